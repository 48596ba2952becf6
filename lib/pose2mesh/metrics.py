"""Evaluation metrics (DATA_FORMATS 1.9), batched torch, per sample.

Every metric takes ``pred`` and ``gt`` of shape (B, N, 3) in millimetres (N joints or
vertices, same order) and returns a (B,) tensor of per-sample mean Euclidean errors (mm).

Root alignment is the caller's job: MPJPE / MPVPE compare the points as given, so subtract
each sample's root joint from ``pred`` and ``gt`` first (the evaluation protocol's root-relative
error). The PA variants first align ``pred`` onto ``gt`` by a similarity transform, which
also removes any translation.
"""
from __future__ import annotations

import torch


def _mean_point_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(pred - gt, dim=-1).mean(dim=-1)


def mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error: (B, N, 3), (B, N, 3) mm -> (B,) mm. No root alignment
    is done here (see the module docstring)."""
    return _mean_point_error(pred, gt)


def mpvpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean per-vertex position error: (B, V, 3), (B, V, 3) mm -> (B,) mm. No root alignment
    is done here (see the module docstring)."""
    return _mean_point_error(pred, gt)


def rigid_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Similarity Procrustes (Umeyama) alignment of ``pred`` onto ``gt``, per sample.

    Recipe (DATA_FORMATS 1.9), in float64: centre both point sets; H = A0^T B0 / N;
    SVD H = U S V^T; R = V U^T; if det R < 0 negate the last singular value and the last row
    of V^T and recompute R (a proper rotation, never a reflection); scale
    c = sum(S) / var(A) with var(A) the sum of the per-axis population variances;
    t = mu_B - c R mu_A; result c R a + t for every point a.

    Args:
        pred: (B, N, 3) points to align (A).
        gt: (B, N, 3) reference points (B).
    Returns:
        (B, N, 3) aligned ``pred``, in ``pred``'s dtype.
    """
    a, b = pred.double(), gt.double()
    mean_a, mean_b = a.mean(dim=1, keepdim=True), b.mean(dim=1, keepdim=True)
    a0, b0 = a - mean_a, b - mean_b
    cross = a0.transpose(1, 2) @ b0 / a.shape[1]  # (B, 3, 3)
    u, s, vh = torch.linalg.svd(cross)
    rotation = vh.transpose(1, 2) @ u.transpose(1, 2)
    reflected = torch.linalg.det(rotation) < 0  # (B,)
    flip = torch.ones_like(s)
    flip[:, -1] = torch.where(reflected, -1.0, 1.0)
    s = s * flip
    vh = vh * flip[:, :, None]  # negates the last row of V^T where reflected
    rotation = vh.transpose(1, 2) @ u.transpose(1, 2)
    variance = a0.square().sum(dim=(1, 2)) / a.shape[1]
    scale = s.sum(dim=1) / variance.clamp_min(torch.finfo(torch.float64).tiny)
    aligned = scale[:, None, None] * (a0 @ rotation.transpose(1, 2)) + mean_b
    return aligned.to(pred.dtype)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MPJPE after :func:`rigid_align` of each sample: (B, N, 3) mm -> (B,) mm."""
    return mpjpe(rigid_align(pred, gt), gt)


def pa_mpvpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MPVPE after :func:`rigid_align` of each sample: (B, V, 3) mm -> (B,) mm."""
    return mpvpe(rigid_align(pred, gt), gt)
