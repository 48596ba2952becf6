"""MeshNet: the coarse-to-fine Chebyshev graph CNN from joints to mesh vertices.

Data flow (everything vertex-major, ``(nodes, B, channels)``):

1. skeleton graph: Chebyshev convolutions (BN + ReLU) on the J joints, 5 -> 32 -> 64 -> 64;
2. a fully connected layer from J*64 onto the **second-coarsest** mesh level (n_{L-2} * 64);
   the coarsest level of the hierarchy is not used, as in the original;
3. one residual block per mesh level from level L-2 down to level 0: Chebyshev convolutions
   (BN + ReLU), plus the block input mapped to the block's output width by linear
   interpolation over the channel axis (the original's parameter-free shortcut); between
   blocks, 2x upsampling to the next finer level repeats every node twice (the hierarchy's
   binary-tree property). The repeat is not materialized: each block after the first takes
   the coarser output and its first convolution and shortcut work on the repeated nodes
   implicitly (``ChebConv(x, repeats=2)``, broadcast add), with the same result as
   ``repeat_interleave(2)`` on the node axis;
4. a head on level 0 (128 -> 64 -> 3), no BN/ReLU on its last layer and no shortcut;
5. ``index_select`` of ``hierarchy.inverse_perm``: the padded level-0 nodes back to the body
   model's vertex order (fake nodes dropped), returned batch-major (B, V, 3) in metres.

Channel plans (one tuple per mesh block, coarse to fine; see :func:`plan_for_levels`):

* body, 9 levels: (64->128->256) (256->256->256)x4 (256->128->128) (128->128->128)x2
* hand, 6 levels: (64->128->256) (256->256->256)x3 (256->128->128)
* other level counts L >= 3: the hand rule, (256->256->256) x (L-3); L = 2: (64->128->128).

The body and hand plans are the original's; for the hand this gives three 256 blocks (the
original's 6-level MANO setting). With the same hierarchy sizes the parameter count equals
the original's exactly (its shortcut interpolation has no parameters either).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pose2mesh.errors import Pose2MeshError
from pose2mesh.models.cheb_conv import ChebConv, GraphLaplacian


@dataclass(frozen=True)
class MeshNetPlan:
    """Output widths of MeshNet's graph convolutions.

    Attributes:
        skeleton: widths of the skeleton-graph convolutions (input width = feature width);
            the last one is also the per-node width the FC layer writes on the mesh.
        mesh_blocks: one tuple of conv widths per residual block, for mesh levels L-2 (the
            second-coarsest) down to 0; so ``len(mesh_blocks) == num_levels - 1``.
        head: widths of the convolutions on level 0 after the last block; the last entry
            is the output width (3) and has no BN/ReLU.
    """

    skeleton: tuple[int, ...]
    mesh_blocks: tuple[tuple[int, ...], ...]
    head: tuple[int, ...] = (64, 3)


BODY_PLAN = MeshNetPlan(
    skeleton=(32, 64, 64),
    mesh_blocks=((128, 256),) + ((256, 256),) * 4 + ((128, 128),) * 3,
)
HAND_PLAN = MeshNetPlan(
    skeleton=(32, 64, 64),
    mesh_blocks=((128, 256),) + ((256, 256),) * 3 + ((128, 128),),
)


def plan_for_levels(num_levels: int) -> MeshNetPlan:
    """The default channel plan for a hierarchy of ``num_levels`` levels (module docstring)."""
    if num_levels < 2:
        raise Pose2MeshError(f"MeshNet needs a mesh hierarchy of >= 2 levels, got {num_levels}")
    if num_levels == 9:
        return BODY_PLAN
    if num_levels == 2:
        return MeshNetPlan(skeleton=(32, 64, 64), mesh_blocks=((128, 128),))
    return MeshNetPlan(
        skeleton=(32, 64, 64),
        mesh_blocks=((128, 256),) + ((256, 256),) * (num_levels - 3) + ((128, 128),),
    )


class ResidualGraphBlock(nn.Module):
    """Chebyshev convolutions (each BN + ReLU) plus a channel-interpolated shortcut.

    ``forward(x, repeats=1)``: (N / repeats, B, C_in) -> (N, B, widths[-1]) on the block's
    N-node level; with ``repeats > 1`` the input is the coarser level's features, each node
    standing for ``repeats`` consecutive nodes (an upsampling by repetition, not stored).
    """

    def __init__(self, laplacian: GraphLaplacian, in_channels: int, widths: tuple[int, ...],
                 order: int):
        super().__init__()
        chain = (in_channels, *widths)
        self.convs = nn.ModuleList(
            ChebConv(laplacian, c_in, c_out, order, relu=True)
            for c_in, c_out in zip(chain, chain[1:])
        )
        self.in_channels, self.out_channels = in_channels, widths[-1]

    def forward(self, x: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        y = self.convs[0](x, repeats)
        for conv in self.convs[1:]:
            y = conv(y)
        nodes, batch, _ = x.shape
        skip = x
        if self.in_channels != self.out_channels:
            skip = F.interpolate(x.reshape(nodes * batch, 1, self.in_channels),
                                 size=self.out_channels, mode="linear", align_corners=False)
        skip = skip.view(nodes, 1, batch, self.out_channels)
        y_nodes = y.view(nodes, repeats, batch, self.out_channels)
        if y.requires_grad:  # the ReLU's backward needs y: a new tensor
            return (y_nodes + skip).view(y.shape)
        return y_nodes.add_(skip).view(y.shape)  # no autograd: in place, no new buffer


class MeshNet(nn.Module):
    """Joints (2D + lifted 3D) -> mesh vertices; see the module docstring.

    ``forward(features)``: (B, J, C_in) per-joint features (Pose2Mesh: normalized 2D ++ 3D/1000
    = 5 channels) -> (B, V, 3) vertices in metres, in the body model's vertex order.

    Args:
        hierarchy: a ``pose2mesh.graph.MeshHierarchy`` (``sizes``, ``laplacians``,
            ``inverse_perm``) with >= 2 levels.
        skeleton_laplacian: (J, J) rescaled Laplacian of the joint graph.
        in_channels: C_in.
        order: Chebyshev order K.
        plan: a :class:`MeshNetPlan`, ``"body"``, ``"hand"`` or None (by level count).
    """

    def __init__(self, hierarchy, skeleton_laplacian, in_channels: int = 5, order: int = 3,
                 plan: MeshNetPlan | str | None = None):
        super().__init__()
        num_levels = len(hierarchy.sizes)
        if plan is None:
            plan = plan_for_levels(num_levels)
        elif isinstance(plan, str):
            plans = {"body": BODY_PLAN, "hand": HAND_PLAN}
            if plan not in plans:
                raise Pose2MeshError(f"unknown MeshNet plan '{plan}'; expected one of {sorted(plans)}")
            plan = plans[plan]
        if len(plan.mesh_blocks) != num_levels - 1:
            raise Pose2MeshError(
                f"MeshNet plan has {len(plan.mesh_blocks)} mesh blocks but the hierarchy has "
                f"{num_levels} levels (needs levels - 1 = {num_levels - 1} blocks)"
            )
        self.plan = plan
        self.num_vertices = int(hierarchy.num_vertices)
        self.sizes = [int(n) for n in hierarchy.sizes]

        skeleton_graph = GraphLaplacian(skeleton_laplacian)
        self.num_joints = skeleton_graph.num_nodes
        chain = (in_channels, *plan.skeleton)
        self.skeleton_convs = nn.ModuleList(
            ChebConv(skeleton_graph, c_in, c_out, order, relu=True)
            for c_in, c_out in zip(chain, chain[1:])
        )
        self.fc_channels = plan.skeleton[-1]
        start_level = num_levels - 2
        self.fc = nn.Linear(self.num_joints * plan.skeleton[-1],
                            self.sizes[start_level] * self.fc_channels)

        graphs = [GraphLaplacian(hierarchy.laplacians[level]) for level in range(num_levels - 1)]
        blocks, channels = [], self.fc_channels
        for index, widths in enumerate(plan.mesh_blocks):
            blocks.append(ResidualGraphBlock(graphs[start_level - index], channels, widths, order))
            channels = widths[-1]
        self.blocks = nn.ModuleList(blocks)
        chain = (channels, *plan.head)
        last = len(plan.head) - 1
        self.head = nn.ModuleList(
            ChebConv(graphs[0], c_in, c_out, order, batch_norm=i < last, relu=i < last)
            for i, (c_in, c_out) in enumerate(zip(chain, chain[1:]))
        )
        inverse_perm = torch.as_tensor(hierarchy.inverse_perm, dtype=torch.long)
        self.register_buffer("inverse_perm", inverse_perm, persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch = features.shape[0]
        if features.dim() != 3 or features.shape[1] != self.num_joints:
            raise Pose2MeshError(
                f"MeshNet expects joint features of shape (B, {self.num_joints}, C), "
                f"got {tuple(features.shape)}"
            )
        x = features.transpose(0, 1).contiguous()  # (J, B, C)
        for conv in self.skeleton_convs:
            x = conv(x)
        x = self.fc(x.transpose(0, 1).reshape(batch, -1))  # (B, n_{L-2} * C)
        x = x.view(batch, -1, self.fc_channels).transpose(0, 1).contiguous()  # (n, B, C)
        x = self.blocks[0](x)
        for block in self.blocks[1:]:
            x = block(x, repeats=2)  # 2x upsampling from the previous level
        for conv in self.head:
            x = conv(x)
        vertices = x.index_select(0, self.inverse_perm)  # (V, B, 3), body-model order
        return vertices.transpose(0, 1).contiguous()
