"""PoseNet: the residual fully connected 2D -> 3D pose lifter (Martinez et al. 2017 style).

``w_in`` (J*2 -> H), BN, ReLU, dropout; ``stages`` residual blocks of two
(linear H -> H, BN, ReLU, dropout); ``w_out`` (H -> J*3). Pose2Mesh uses H = 4096, 2 stages,
dropout 0.5. The parameter count equals the original lifter's for the same J, H, stages.
"""
from __future__ import annotations

import torch
from torch import nn

from pose2mesh.errors import Pose2MeshError


def _linear_unit(in_features: int, out_features: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, out_features),
        nn.BatchNorm1d(out_features),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
    )


class ResidualBlock(nn.Module):
    """``x + unit2(unit1(x))`` with each unit = linear, BN, ReLU, dropout. x: (B, H)."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(
            _linear_unit(width, width, dropout), _linear_unit(width, width, dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class PoseNet(nn.Module):
    """2D -> 3D pose lifter.

    ``forward(pose2d)``: (B, J, 2) normalized 2D joints (DATA_FORMATS 1.5) ->
    (B, J, 3) root-relative 3D joints in millimetres (camera frame).

    Args:
        num_joints: J.
        hidden: H, the width of every hidden layer.
        stages: number of residual blocks.
        dropout: dropout probability after every ReLU.
    """

    def __init__(self, num_joints: int, hidden: int = 4096, stages: int = 2,
                 dropout: float = 0.5):
        super().__init__()
        self.num_joints = num_joints
        self.input_layer = _linear_unit(num_joints * 2, hidden, dropout)
        self.stages = nn.Sequential(*(ResidualBlock(hidden, dropout) for _ in range(stages)))
        self.output_layer = nn.Linear(hidden, num_joints * 3)

    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        if pose2d.dim() != 3 or pose2d.shape[1:] != (self.num_joints, 2):
            raise Pose2MeshError(
                f"PoseNet expects 2D poses of shape (B, {self.num_joints}, 2), "
                f"got {tuple(pose2d.shape)}"
            )
        hidden = self.stages(self.input_layer(pose2d.reshape(len(pose2d), -1)))
        return self.output_layer(hidden).view(len(pose2d), self.num_joints, 3)
