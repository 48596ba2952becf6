"""Rotation helpers shared by the datasets, mocap retargeting and the anny body fit (batched
torch; axis-angle <-> matrix conversions are ``roma``'s, exact at zero rotation and stable
near pi).

anny's ``local-bone-world`` parameterization composes the world delta rotation of bone b
(posed orientation times the transposed reference orientation) as
``D_b = D_parent W_b L_b W_b^T`` with W_b the bone's reference orientation and L_b its local
rotation; :func:`local_from_world_deltas` inverts that. The root's ``pose_aa`` is its world
delta itself (``AnnyModel.delta_transforms`` moves it into the root frame).
"""
from __future__ import annotations

import roma
import torch


def rotation_between(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) smallest rotations turning directions ``source`` (..., 3) onto ``target``
    (..., 3); opposite directions turn by pi about an axis perpendicular to ``source``."""
    a = torch.nn.functional.normalize(source, dim=-1)
    b = torch.nn.functional.normalize(target, dim=-1)
    cross = torch.linalg.cross(a, b)
    sin = cross.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True)
    # Perpendicular fallback axis for (anti)parallel pairs: a x (the axis a is least along).
    least = torch.nn.functional.one_hot(a.abs().argmin(-1), 3).to(a.dtype)
    perpendicular = torch.nn.functional.normalize(torch.linalg.cross(a, least), dim=-1)
    degenerate = sin < 1e-9
    axis = torch.where(degenerate, perpendicular, cross / sin.clamp_min(1e-12))
    angle = torch.where(degenerate, torch.where(cos > 0, 0.0, torch.pi), torch.atan2(sin, cos))
    return roma.rotvec_to_rotmat(axis * angle)


def local_from_world_deltas(deltas: torch.Tensor, parents: torch.Tensor,
                            orientations: torch.Tensor) -> torch.Tensor:
    """anny ``pose_aa`` (..., NB, 3) from world delta rotations (..., NB, 3, 3).

    Args:
        deltas: world delta rotation of every bone.
        parents: (NB,) parent indices, -1 for the root (bone 0).
        orientations: (NB, 3, 3) reference bone orientations W_b.
    """
    parent_deltas = deltas[..., parents.clamp_min(0), :, :]
    w = orientations.to(deltas.dtype)
    local = w.transpose(-1, -2) @ parent_deltas.transpose(-1, -2) @ deltas @ w
    local = torch.cat([deltas[..., :1, :, :], local[..., 1:, :, :]], dim=-3)
    return roma.rotmat_to_rotvec(local)


def compose_root_rotation(pose_aa: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) axis-angle pose, (B, 3, 3) camera rotation -> pose with root ``R_cam R_root``
    (finite for a zero root rotation, where the original's conversion divided by the angle)."""
    root = rotation @ roma.rotvec_to_rotmat(pose_aa[:, 0])
    return torch.cat([roma.rotmat_to_rotvec(root)[:, None], pose_aa[:, 1:]], dim=1)
