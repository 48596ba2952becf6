"""Cameras and the 2D input normalisation of Pose2Mesh.

Conventions: camera frame x right, y down, z forward (OpenCV); pixel coordinates put the
centre of pixel (col, row) at (col, row).

* :func:`project_perspective` -- pinhole projection, batched torch.
* :func:`fit_weak_perspective` -- closed-form weighted least-squares fit of a weak-perspective
  camera ``uv = s * XY + t`` (the demo's camera), with :func:`project_weak_perspective`,
  :func:`weak_perspective_reprojection_error` and :func:`weak_to_perspective_translation`
  (place the mesh for a pinhole renderer so that it projects like the fitted camera).
* :func:`process_bbox` -- the original loaders' box processing (DATA_FORMATS 1.5, step 2),
  which the benchmark loaders use to drop degenerate boxes, and :func:`standardize_pose2d`, the
  last step of the 2D input pipeline and all of it when the crop is not rotated (per-sample,
  per-axis standardisation: the crop and the division by the crop size are per-axis affine maps
  with positive scale, which the standardisation cancels). The batched pipeline with rotation
  and flip is :mod:`pose2mesh.datasets.transforms`; the tests check it against a per-sample
  NumPy reference of the original (``tests/reference_pipeline.py``).
"""
from __future__ import annotations

import numpy as np
import torch

from pose2mesh.errors import Pose2MeshError

STD_EPS = 1e-8  # lower bound for a standard deviation (all joints on one vertical/horizontal line)


# ------------------------------------------------------------------------------ projection


def project_perspective(points_cam: torch.Tensor, focal_px, princpt_px) -> torch.Tensor:
    """Pinhole projection ``u = fx X/Z + cx``, ``v = fy Y/Z + cy``.

    Args:
        points_cam: (B, N, 3) camera-frame points (any length unit; it cancels).
        focal_px: fx = fy scalar, (2,) (fx, fy), or (B, 2) per sample.
        princpt_px: (2,) (cx, cy) or (B, 2).
    Returns:
        (B, N, 2) pixel coordinates, dtype/device of ``points_cam``. Depths are clamped to
        >= 1e-8 in magnitude so a point on the camera plane gives a large finite value.
    """
    focal = torch.as_tensor(focal_px, dtype=points_cam.dtype, device=points_cam.device)
    princpt = torch.as_tensor(princpt_px, dtype=points_cam.dtype, device=points_cam.device)
    focal = focal.expand(2) if focal.ndim == 0 else focal
    z = points_cam[..., 2:3]
    z = torch.where(z.abs() < 1e-8, torch.full_like(z, 1e-8), z)
    xy = points_cam[..., :2] / z
    if focal.ndim == 2:
        focal = focal[:, None, :]
    if princpt.ndim == 2:
        princpt = princpt[:, None, :]
    return xy * focal + princpt


# ------------------------------------------------------------------- weak-perspective camera


def _as_float_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.double()
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _prepare_fit_inputs(joints_xy_model, joints_uv_px, weights):
    """(model xy, target uv, weights) as tensors of one float dtype; bad weights -> 0."""
    model = _as_float_tensor(joints_xy_model)[..., :2]
    target = _as_float_tensor(joints_uv_px)[..., :2].to(model)
    if weights is None:
        w = torch.ones(model.shape[:-1], dtype=model.dtype, device=model.device)
    else:
        w = _as_float_tensor(weights).to(model)
    w = torch.where(torch.isfinite(w) & (w > 0), w, torch.zeros_like(w))
    return model, target, w


def fit_weak_perspective(joints_xy_model, joints_uv_px, weights=None):
    """Closed-form weighted least-squares weak-perspective camera.

    Minimises ``sum_j w_j || s * X_j + t - u_j ||^2`` over the scale ``s`` and the 2D translation
    ``t``: with weighted means ``Xbar``, ``ubar``,
    ``s = sum_j w_j (X_j - Xbar).(u_j - ubar) / sum_j w_j |X_j - Xbar|^2`` and
    ``t = ubar - s Xbar``.
    Joints with weight <= 0 (or non-finite weight) are excluded entirely, so their
    coordinates may be anything, NaN included.

    Args:
        joints_xy_model: (J, 2+) or (B, J, 2+) model joints; columns 0-1 (x right, y down of
            the camera frame) are used, any unit (s then has pixels per that unit).
        joints_uv_px: (J, 2+) or (B, J, 2+) target pixel coordinates (columns 0-1 used).
        weights: (J,) or (B, J) confidences; None means all ones.
    Returns:
        ``(scale, tx, ty)``. NumPy inputs give float64 NumPy arrays, torch inputs tensors of the
        model joints' dtype and device; each of shape () for unbatched or (B,) for batched input.
    Raises:
        Pose2MeshError: when a sample has fewer than two weighted joints at distinct positions
            (the scale is then undetermined).
    """
    is_torch = isinstance(joints_xy_model, torch.Tensor)
    model, target, w = _prepare_fit_inputs(joints_xy_model, joints_uv_px, weights)
    used = (w > 0)[..., None]
    model = torch.where(used, model, torch.zeros_like(model))
    target = torch.where(used, target, torch.zeros_like(target))

    w_sum = w.sum(-1, keepdim=True)  # (..., 1)
    safe_w_sum = torch.where(w_sum > 0, w_sum, torch.ones_like(w_sum))
    model_mean = (w[..., None] * model).sum(-2) / safe_w_sum  # (..., 2)
    target_mean = (w[..., None] * target).sum(-2) / safe_w_sum
    model_c = torch.where(used, model - model_mean[..., None, :], torch.zeros_like(model))
    target_c = torch.where(used, target - target_mean[..., None, :], torch.zeros_like(target))
    numerator = (w * (model_c * target_c).sum(-1)).sum(-1)
    denominator = (w * (model_c * model_c).sum(-1)).sum(-1)
    scale_ref = (w * (model * model).sum(-1)).sum(-1) / safe_w_sum[..., 0]
    degenerate = denominator <= 1e-12 * torch.clamp(scale_ref, min=1e-30)
    if bool(degenerate.any()):
        raise Pose2MeshError(
            "cannot fit the camera: fewer than two confident joints at distinct positions"
        )
    scale = numerator / denominator
    trans = target_mean - scale[..., None] * model_mean
    result = (scale, trans[..., 0], trans[..., 1])
    if is_torch:
        return result
    return tuple(r.numpy() for r in result)


def project_weak_perspective(joints_xy_model, scale, tx, ty):
    """``uv = s * XY + (tx, ty)``: (..., J, 2+) model joints -> (..., J, 2) pixels.

    Works on NumPy arrays and torch tensors alike; ``scale``/``tx``/``ty`` have the batch shape.
    """
    xy = joints_xy_model[..., :2]
    s = scale[..., None, None] if hasattr(scale, "ndim") and scale.ndim else scale
    if isinstance(xy, torch.Tensor):
        trans = torch.stack([torch.as_tensor(tx), torch.as_tensor(ty)], -1).to(xy)
    else:
        trans = np.stack([np.asarray(tx), np.asarray(ty)], -1)
    return s * xy + trans[..., None, :]


def weak_perspective_reprojection_error(joints_xy_model, joints_uv_px, weights, scale, tx, ty):
    """Weighted mean pixel distance ``sum_j w_j ||s X_j + t - u_j|| / sum_j w_j``.

    Shapes as in :func:`fit_weak_perspective`; returns a float (unbatched NumPy), or an array /
    tensor of the batch shape. Joints with weight <= 0 are ignored.
    """
    is_torch = isinstance(joints_xy_model, torch.Tensor)
    model, target, w = _prepare_fit_inputs(joints_xy_model, joints_uv_px, weights)
    params = [_as_float_tensor(p).to(model) for p in (scale, tx, ty)]
    projected = project_weak_perspective(model, *params)
    dist = torch.linalg.norm(projected - target, dim=-1)
    dist = torch.where(w > 0, dist, torch.zeros_like(dist))
    error = (w * dist).sum(-1) / torch.clamp(w.sum(-1), min=1e-30)
    if is_torch:
        return error
    return float(error) if error.ndim == 0 else error.numpy()


def weak_to_perspective_translation(scale, tx, ty, focal_px, princpt_px):
    """Camera-frame translation that makes a pinhole camera mimic a weak-perspective fit.

    A root-relative body translated by ``T = ((tx - cx) Tz / fx, (ty - cy) Tz / fy, Tz)`` with
    ``Tz = mean(fx, fy) / s`` projects (to first order in depth/Tz) to ``s * XY + t``. ``s`` is
    in pixels per unit of the body's coordinates and ``T`` comes out in that unit.

    Returns:
        (..., 3) NumPy array or tensor (matching ``scale``).
    """
    fx, fy = (focal_px, focal_px) if np.ndim(focal_px) == 0 else (focal_px[0], focal_px[1])
    cx, cy = princpt_px[0], princpt_px[1]
    tz = 0.5 * (fx + fy) / scale
    parts = [(tx - cx) * tz / fx, (ty - cy) * tz / fy, tz]
    if isinstance(scale, torch.Tensor):
        return torch.stack([torch.as_tensor(p).to(scale) for p in parts], -1)
    return np.stack([np.asarray(p, dtype=np.float64) for p in parts], -1)


# --------------------------------------------------------------- 2D input normalisation


def process_bbox(bbox, aspect_ratio: float, scale: float = 1.0) -> np.ndarray | None:
    """The original's box processing: 1-pixel shrink, grow to ``aspect_ratio`` = w/h, scale.

    Args:
        bbox: ``[x, y, w, h]`` pixels.
    Returns:
        ``[x, y, w, h]`` float32 with ``w / h == aspect_ratio``, centred on the input box's
        centre; None for a degenerate box (w*h <= 0 or w < 1 or h < 1 pixel), which callers
        must turn into an error or a skipped sample (the benchmark loaders drop and count it).
    """
    x, y, w, h = (float(v) for v in bbox)
    if not (w * h > 0 and w - 1 >= 0 and h - 1 >= 0):
        return None
    w, h = w - 1.0, h - 1.0
    cx, cy = x + 0.5 * w, y + 0.5 * h
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    w, h = w * scale, h * scale
    return np.array([cx - 0.5 * w, cy - 0.5 * h, w, h], dtype=np.float32)


def standardize_pose2d(xy: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-axis standardisation over the joints: (..., J, 2) -> (..., J, 2).

    ``(x - mean_j x) / std_j x`` with the population std clamped to >= ``STD_EPS``. Equal to
    the whole 2D input pipeline (tight box, processed box, crop, division by the crop size,
    standardisation) without rotation and flip, for any positive per-axis scaling and shift of
    the input, so raw pixel coordinates can be fed directly.
    """
    xy = xy if xy.is_floating_point() else xy.float()
    mean = xy.mean(-2, keepdim=True)
    std = xy.std(-2, keepdim=True, correction=0).clamp_min(STD_EPS)
    return (xy - mean) / std
