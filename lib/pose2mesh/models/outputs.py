"""One output type for every network: a dict of named tensors."""
from __future__ import annotations

from collections.abc import Mapping

import torch


def as_output_dict(outputs) -> dict[str, torch.Tensor]:
    """PoseNet returns the (B, J, 3) mm tensor; HGN and Pose2MeshNet a dict. Always a dict
    (PoseNet's tensor under ``pose3d_mm``)."""
    return dict(outputs) if isinstance(outputs, Mapping) else {"pose3d_mm": outputs}
