"""Per-sample NumPy reference of the original loaders' 2D input pipeline (DATA_FORMATS 1.5).

Test code: the library runs the batched torch version (:mod:`pose2mesh.datasets.transforms`:
``tight_bbox``, ``process_bbox_batch``, ``crop_points``, ``flip_crop_points``,
``crop_to_pose2d``, and :func:`pose2mesh.camera.standardize_pose2d`); the tests compare it with
the functions here, which follow the original step by step:

* :func:`get_bbox` -- tight box over the joints;
* :func:`pose2mesh.camera.process_bbox` (the library's, shared) -- 1-pixel shrink, grow to the
  crop's aspect ratio;
* :func:`crop_affine`, :func:`apply_affine` -- the 2x3 image -> crop map the original builds
  from three point correspondences, and its application;
* :func:`normalize_pose2d` -- the whole pipeline for one pose, with optional rotation and flip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pose2mesh.camera import STD_EPS, process_bbox
from pose2mesh.errors import Pose2MeshError


def get_bbox(joints_xy, valid=None) -> np.ndarray:
    """Tight box ``[xmin, ymin, w, h]`` (float32) around (J, 2+) joints.

    The original uses every row; pass ``valid`` (J,) bool to use only some joints.
    Raises Pose2MeshError if no joint is valid.
    """
    xy = np.asarray(joints_xy, dtype=np.float64)[:, :2]
    if valid is not None:
        xy = xy[np.asarray(valid, dtype=bool)]
    if len(xy) == 0:
        raise Pose2MeshError("cannot compute a bounding box: the 2D pose has no valid joint")
    lo, hi = xy.min(0), xy.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float32)


def crop_affine(center, size, rot_deg: float, out_w: int, out_h: int) -> np.ndarray:
    """2x3 map from image pixels to crop pixels (float64).

    ``p' = diag(out_w / w, out_h / h) Rot(-rot) (p - center) + (out_w / 2, out_h / 2)`` with
    ``Rot(a) = [[cos a, -sin a], [sin a, cos a]]``: the box of ``size`` = (w, h) centred on
    ``center`` and rotated by ``rot_deg`` maps onto the (out_w, out_h) crop. This is the map the
    original builds from three point correspondences.
    """
    theta = math.radians(rot_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    rot_inv = np.array([[cos, sin], [-sin, cos]])  # Rot(-theta)
    linear = np.diag([out_w / float(size[0]), out_h / float(size[1])]) @ rot_inv
    offset = np.array([0.5 * out_w, 0.5 * out_h]) - linear @ np.asarray(center, np.float64)
    return np.concatenate([linear, offset[:, None]], axis=1)


def apply_affine(points, affine) -> np.ndarray:
    """Apply a 2x3 ``affine`` to columns 0-1 of (..., N, C>=2) ``points``; other columns pass
    through. Returns float64 (integer input is converted first, see original bug 10.2)."""
    pts = np.array(points, dtype=np.float64)
    affine = np.asarray(affine, dtype=np.float64)
    pts[..., :2] = pts[..., :2] @ affine[:, :2].T + affine[:, 2]
    return pts


@dataclass(frozen=True)
class NormalizedPose:
    """Result of :func:`normalize_pose2d`.

    Attributes:
        pose2d: (J, 2) float32 network input.
        bbox: processed ``[x, y, w, h]`` box in image pixels.
        affine: 2x3 image -> crop map.
        mean, std: (2,) per-axis statistics of the crop coordinates divided by the crop size
            (after the optional flip), used by the final standardisation.
    """

    pose2d: np.ndarray
    bbox: np.ndarray
    affine: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def normalize_pose2d(
    joints_xy,
    input_shape_hw: Sequence[int] = (384, 288),
    rot_deg: float = 0.0,
    flip_pairs: Sequence[tuple[int, int]] | None = None,
    flip: bool = False,
) -> NormalizedPose:
    """The original loaders' 2D input pipeline (DATA_FORMATS 1.5, steps 1-6).

    1. tight box over all joints; 2. ``process_bbox`` to the crop's aspect ratio;
    3. :func:`crop_affine` with rotation ``rot_deg``; 4. optional horizontal flip in crop pixels
    (``x' = W - x - 1``, then swap the rows of every flip pair); 5. divide by (W, H);
    6. per-axis standardisation over the joints (population std, eps-guarded).

    Args:
        joints_xy: (J, 2+) pixel coordinates (extra columns ignored; ints are converted).
        input_shape_hw: crop (H, W).
        flip_pairs: required when ``flip`` is True.
    Raises:
        Pose2MeshError: the pose's box is degenerate (narrower or shorter than one pixel,
            e.g. coordinates that are not in pixels).
    """
    out_h, out_w = int(input_shape_hw[0]), int(input_shape_hw[1])
    xy = np.asarray(joints_xy, dtype=np.float64)[:, :2]
    tight = get_bbox(xy)
    bbox = process_bbox(tight, aspect_ratio=out_w / out_h)
    if bbox is None:
        raise Pose2MeshError(
            f"2D pose spans only {tight[2]:.3g} x {tight[3]:.3g} pixels; expected pixel "
            "coordinates spanning at least 1 pixel in x and y"
        )
    center = bbox[:2].astype(np.float64) + 0.5 * bbox[2:].astype(np.float64)
    affine = crop_affine(center, bbox[2:], rot_deg, out_w, out_h)
    crop = apply_affine(xy, affine)
    if flip:
        if flip_pairs is None:
            raise ValueError("normalize_pose2d(flip=True) needs flip_pairs")
        crop[:, 0] = out_w - crop[:, 0] - 1
        for i, j in flip_pairs:
            crop[[i, j]] = crop[[j, i]]
    crop /= np.array([out_w, out_h], dtype=np.float64)
    mean = crop.mean(0)
    std = np.maximum(crop.std(0), STD_EPS)
    pose2d = ((crop - mean) / std).astype(np.float32)
    return NormalizedPose(pose2d=pose2d, bbox=bbox, affine=affine, mean=mean, std=std)
