"""Batched 2D input pipeline and augmentation of the benchmark loaders (DATA_FORMATS 1.5, 1.6).

The per-sample NumPy reference of the original pipeline lives with the tests
(``tests/reference_pipeline.py``, ``normalize_pose2d``), which check this module against it.
The loaders here build their inputs for a whole batch on the training device, in torch:

1. tight box over **all** joints (:func:`tight_bbox`);
2. the original ``process_bbox`` (1-pixel shrink, grow to the crop's aspect ratio) with a
   per-sample validity flag instead of ``None`` (:func:`process_bbox_batch`);
3. the crop affine ``p' = (W / w) Rot(-theta) (p - c) + (W/2, H/2)`` (:func:`crop_points`);
4. horizontal flip in crop pixels ``x' = W - x - 1`` plus the flip-pair row swap
   (:func:`flip_crop_points`);
5. division by (W, H) and per-sample, per-axis standardisation
   (:func:`pose2mesh.camera.standardize_pose2d`).

The 3D counterpart (:func:`rotate_flip_3d`) rotates camera-frame points about the optical axis
by ``-theta`` and, for flipped samples, swaps flip pairs and negates X.

Augmentation draws (:func:`draw_augmentation`) follow 1.6: flip with probability 0.5 when
enabled; rotation ``clip(N(0,1) * factor, +-2 factor)``, zeroed with probability 0.5.
"""

from __future__ import annotations

import numpy as np
import torch

from pose2mesh.camera import standardize_pose2d


def tight_bbox(uv_px: torch.Tensor) -> torch.Tensor:
    """(B, J, 2+) pixel points -> (B, 4) ``[xmin, ymin, w, h]`` over every joint."""
    xy = uv_px[..., :2]
    lo = xy.amin(dim=-2)
    hi = xy.amax(dim=-2)
    return torch.cat([lo, hi - lo], dim=-1)


def process_bbox_batch(
    bbox: torch.Tensor, aspect_ratio: float, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The original ``process_bbox`` for a batch (see :func:`pose2mesh.camera.process_bbox`).

    Args:
        bbox: (B, 4) ``[x, y, w, h]`` pixels.
        aspect_ratio: w / h of the result.
    Returns:
        (B, 4) processed boxes and (B,) bool validity. A degenerate box (w*h <= 0, or w or h
        below one pixel) is invalid; its returned box is a unit square at its corner so that
        downstream arithmetic stays finite.
    """
    x, y, w, h = bbox.unbind(-1)
    valid = (w * h > 0) & (w - 1 >= 0) & (h - 1 >= 0)
    w = torch.where(valid, w - 1.0, torch.ones_like(w))
    h = torch.where(valid, h - 1.0, torch.full_like(h, 1.0 / aspect_ratio))
    cx, cy = x + 0.5 * w, y + 0.5 * h
    wider = w > aspect_ratio * h
    new_w = torch.where(wider, w, h * aspect_ratio) * scale
    new_h = torch.where(wider, w / aspect_ratio, h) * scale
    return torch.stack([cx - 0.5 * new_w, cy - 0.5 * new_h, new_w, new_h], dim=-1), valid


def rotation_2d(rot_deg: torch.Tensor) -> torch.Tensor:
    """(B,) degrees -> (B, 2, 2) ``Rot(-theta)`` = [[cos, sin], [-sin, cos]] (image coordinates)."""
    theta = torch.deg2rad(rot_deg)
    cos, sin = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], dim=-2)


def crop_points(
    uv_px: torch.Tensor, bbox: torch.Tensor, rot_deg: torch.Tensor, out_w: int, out_h: int
) -> torch.Tensor:
    """Image pixels -> crop pixels of the (rotated) processed box, as the original's affine.

    Args:
        uv_px: (B, N, 2) points; bbox: (B, 4) processed boxes (aspect ratio out_w / out_h);
        rot_deg: (B,) crop rotation.
    Returns:
        (B, N, 2) ``(out_w / w) Rot(-theta) (p - c) + (out_w / 2, out_h / 2)``.
    """
    center = bbox[:, :2] + 0.5 * bbox[:, 2:]
    scale = out_w / bbox[:, 2]
    rotated = torch.einsum("bij,bnj->bni", rotation_2d(rot_deg), uv_px - center[:, None, :])
    offset = torch.tensor([0.5 * out_w, 0.5 * out_h], dtype=uv_px.dtype, device=uv_px.device)
    return scale[:, None, None] * rotated + offset


def flip_crop_points(crop_px: torch.Tensor, flip: torch.Tensor, flip_perm: np.ndarray, out_w: int) -> torch.Tensor:
    """Horizontal flip of the samples with ``flip`` (B,) True: ``x' = W - x - 1``, swap pairs."""
    perm = torch.as_tensor(flip_perm, device=crop_px.device)
    flipped = crop_px[:, perm].clone()
    flipped[..., 0] = out_w - flipped[..., 0] - 1
    return torch.where(flip[:, None, None], flipped, crop_px)


def crop_to_pose2d(crop_px: torch.Tensor, out_w: int, out_h: int) -> torch.Tensor:
    """Steps 5-6: divide by the crop size, then standardise per sample and axis."""
    size = torch.tensor([out_w, out_h], dtype=crop_px.dtype, device=crop_px.device)
    return standardize_pose2d(crop_px / size)


def rotate_flip_3d(
    points: torch.Tensor, rot_deg: torch.Tensor, flip: torch.Tensor | None, flip_perm: np.ndarray | None
) -> torch.Tensor:
    """The 3D augmentation: rotate (B, N, 3) camera-frame points about the z axis by ``-theta``
    (the 2D crop's rotation), then, for flipped samples, swap the flip-pair rows and negate X."""
    rot = rotation_2d(rot_deg).to(points)
    xy = torch.einsum("bij,bnj->bni", rot, points[..., :2])
    out = torch.cat([xy, points[..., 2:]], dim=-1)
    if flip is None or flip_perm is None:
        return out
    perm = torch.as_tensor(flip_perm, device=points.device)
    flipped = out[:, perm] * torch.tensor([-1.0, 1.0, 1.0], dtype=points.dtype, device=points.device)
    return torch.where(flip[:, None, None], flipped, out)


def rotate_z(points: torch.Tensor, rot_deg: torch.Tensor) -> torch.Tensor:
    """Rotate (B, N, 3) points about the camera z axis by ``-theta`` (no flip)."""
    return rotate_flip_3d(points, rot_deg, None, None)


def map_box_corners_area(
    tight: torch.Tensor, bbox: torch.Tensor, rot_deg: torch.Tensor, out_w: int, out_h: int
) -> torch.Tensor:
    """Area (crop px^2) of a tight box after the crop affine, as the original noise model
    measures the person's size: the product of the lengths of the box's top and left edges
    mapped through the affine (their corners (xmin, ymin), (xmax, ymin), (xmin, ymax)), so a
    rotation does not change it. tight (x, y, w, h), bbox (B, 4); returns (B,)."""
    x, y, w, h = tight.unbind(-1)
    corners = torch.stack([torch.stack([x, y], -1), torch.stack([x + w, y], -1),
                           torch.stack([x, y + h], -1)], dim=1)
    mapped = crop_points(corners, bbox, rot_deg, out_w, out_h)
    top = (mapped[:, 1] - mapped[:, 0]).norm(dim=-1)
    left = (mapped[:, 2] - mapped[:, 0]).norm(dim=-1)
    return top * left


def draw_augmentation(rng: np.random.Generator, flip_enabled: bool, rotate_factor: float) -> tuple[float, float]:
    """One sample's (flip 0/1, rotation degrees) as the original draws them (1.6)."""
    flip = float(flip_enabled and rng.random() < 0.5)
    rot = 0.0
    if rotate_factor > 0:
        rot = float(np.clip(rng.standard_normal() * rotate_factor, -2 * rotate_factor, 2 * rotate_factor))
        if rng.random() < 0.5:
            rot = 0.0
    return flip, rot


def sample_rng(seed: int, epoch: int, index: int, domain: int) -> np.random.Generator:
    """A generator that is a pure function of (seed, epoch, index, domain)."""
    return np.random.default_rng(np.random.SeedSequence([domain, seed % 2**63, epoch, index]))
