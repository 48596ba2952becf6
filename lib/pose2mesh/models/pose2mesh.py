"""Pose2MeshNet: a lifter (PoseNet or HGN) lifts the 2D pose, MeshNet turns 2D ++ 3D into the
mesh."""
from __future__ import annotations

import torch
from torch import nn

from pose2mesh.models.meshnet import MeshNet
from pose2mesh.models.outputs import as_output_dict


class Pose2MeshNet(nn.Module):
    """The full Pose2Mesh network.

    ``forward(pose2d)``: (B, J, 2) normalized 2D joints -> dict
        ``mesh_m``: (B, V, 3) root-relative vertices in metres, body-model vertex order;
        ``pose3d_mm``: (B, J, 3) lifted root-relative joints in millimetres;
        and the lifter's other outputs (HGN: ``coarse_mesh_mm``).

    MeshNet's input per joint is ``(pose2d, pose3d_mm / 1000)`` (5 channels) with the lifted
    pose detached, as in the original: the mesh losses do not train the lifter; the lifter is
    trained by its own joint loss on ``pose3d_mm``.
    State-dict prefixes: ``pose_lifter.*`` and ``mesh_net.*``.
    """

    def __init__(self, pose_lifter: nn.Module, mesh_net: MeshNet):
        super().__init__()
        self.pose_lifter = pose_lifter
        self.mesh_net = mesh_net

    def forward(self, pose2d: torch.Tensor) -> dict[str, torch.Tensor]:
        lifted = as_output_dict(self.pose_lifter(pose2d))
        features = torch.cat((pose2d, lifted["pose3d_mm"].detach() / 1000.0), dim=2)
        return {"mesh_m": self.mesh_net(features), **lifted}
