"""SMPL/MANO targets of the benchmark loaders (DATA_FORMATS 1.4), all batched torch on the
training device:

* :func:`world_to_camera_mesh` -- the layer run with the root rotation composed with the
  camera (:func:`pose2mesh.rotations.compose_root_rotation`) and no translation, then shifted
  by ``T = R_cam trans + t_cam - J0 + R_cam J0`` so that the mesh equals
  ``R_cam (world mesh) + t_cam`` (SMPL rotates about the root joint J0, not the origin);
* :func:`clamp_shape` -- betas with any ``|beta_i| > 3`` are replaced by zeros;
* :func:`translation_aligned_error_mm`, :func:`crop64_error_px` -- the fitting checks;
* :func:`smpl_mesh_protocol_errors` -- the original Human36M / 3DPW mesh evaluation;
* :func:`parse_gender`, :class:`GenderedLayers` -- each sample through its own gender's layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pose2mesh.datasets.base import root_relative
from pose2mesh.datasets.transforms import crop_points, process_bbox_batch, tight_bbox
from pose2mesh.errors import Pose2MeshError
from pose2mesh.rotations import compose_root_rotation

SHAPE_CLAMP = 3.0
GENDER_CODES = {"neutral": 0, "male": 1, "female": 2}


def clamp_shape(shape: torch.Tensor, limit: float = SHAPE_CLAMP) -> torch.Tensor:
    """(B, 10) betas; samples with any ``|beta| > limit`` get all-zero betas (the original's
    shape sanity clamp of Human36M, COCO and MuCo)."""
    bad = (shape.abs() > limit).any(dim=-1, keepdim=True)
    return torch.where(bad, torch.zeros_like(shape), shape)


def world_to_camera_mesh(
    body_model,
    pose_aa: torch.Tensor,
    shape: torch.Tensor,
    rotation: torch.Tensor,
    translation_m: torch.Tensor,
    trans_world_m: torch.Tensor | None = None,
    *,
    compensate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-frame mesh and FK joints of world-frame SMPL/MANO parameters (1.4).

    Args:
        pose_aa: (B, J, 3) world-frame pose; shape: (B, 10); rotation: (B, 3, 3) world ->
            camera; translation_m: (B, 3) camera translation (metres); trans_world_m: (B, 3)
            the parameters' world translation (metres), None for zero.
        compensate: True gives exactly ``R_cam (layer(pose, shape, trans_world)) + t_cam``.
            False (the original's AMASS) rotates the body about its root joint and then adds
            ``t_cam``.
    Returns:
        vertices (B, V, 3) and FK joints (B, Jk, 3), metres, camera frame.
    """
    composed = compose_root_rotation(pose_aa.float(), rotation.float())
    output = body_model(pose_aa=composed, shape=shape)
    vertices, joints = output.vertices_m, output.joints_m
    offset = translation_m.float()
    if compensate:
        root = joints[:, 0]
        offset = offset - root + torch.einsum("bij,bj->bi", rotation.float(), root)
        if trans_world_m is not None:
            offset = offset + torch.einsum("bij,bj->bi", rotation.float(), trans_world_m.float())
    return vertices + offset[:, None], joints + offset[:, None]


# ------------------------------------------------------------------------ fitting checks
def translation_aligned_error_mm(gt_mm: torch.Tensor, fit_mm: torch.Tensor) -> torch.Tensor:
    """Mean per-joint distance (B,) after moving ``fit`` onto the mean of ``gt`` (B, J, 3)."""
    aligned = fit_mm - fit_mm.mean(1, keepdim=True) + gt_mm.mean(1, keepdim=True)
    return (aligned - gt_mm).norm(dim=-1).mean(1)


def crop64_error_px(keypoints_px, keypoints_valid, fit_px, box_points_px) -> torch.Tensor:
    """COCO's fitting check: mean 2D distance (B,) in a 64x64 crop.

    The crop is ``process_bbox(tight box of box_points, aspect 1)``; keypoints (B, K, 2) and
    the fit's keypoints (B, K, 2) are mapped into it and compared over ``keypoints_valid``
    (B, K). Samples without a valid keypoint or with a degenerate box give +inf.
    """
    bbox, ok = process_bbox_batch(tight_bbox(box_points_px), aspect_ratio=1.0)
    zero = torch.zeros(len(bbox), dtype=bbox.dtype, device=bbox.device)
    a = crop_points(keypoints_px, bbox, zero, 64, 64)
    b = crop_points(fit_px, bbox, zero, 64, 64)
    valid = keypoints_valid.float()
    dist = ((a - b).norm(dim=-1) * valid).sum(1) / valid.sum(1).clamp_min(1.0)
    usable = ok & (valid.sum(1) > 0)
    return torch.where(usable, dist, torch.full_like(dist, float("inf")))


# ---------------------------------------------------------------------------- evaluation
def smpl_mesh_protocol_errors(
    body_model, pred_mesh_mm: torch.Tensor, gt_mesh_mm: torch.Tensor, gt_h36m_mm: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Per-sample errors (B,) in mm of the original Human36M / 3DPW mesh evaluation.

    Both meshes are root-aligned on SMPL joint 0 (``J_smpl`` regressed from each):
    ``SMPL-MPJPE`` over the 24 SMPL joints, ``MPVPE`` and ``PA-MPVPE`` (a real similarity-
    aligned vertex error; the original's 3DPW always printed 0, bug 10.11). Then human36
    joints are regressed from the aligned predicted mesh and made relative to their row 0;
    ground truth is ``gt_h36m_mm`` (Human36M: the dataset joints) or, if None, the same
    regression of the aligned GT mesh (3DPW); ``MPJPE`` and ``PA-MPJPE`` over the 14
    evaluation joints.
    """
    from pose2mesh import metrics
    from pose2mesh.joint_sets import HUMAN36

    pred_smpl = body_model.regress_joints(pred_mesh_mm, "smpl")
    gt_smpl = body_model.regress_joints(gt_mesh_mm, "smpl")
    pred_mesh = root_relative(pred_mesh_mm, pred_smpl[:, 0])
    gt_mesh = root_relative(gt_mesh_mm, gt_smpl[:, 0])
    pred_h36 = body_model.regress_joints(pred_mesh, "human36")
    gt_h36 = body_model.regress_joints(gt_mesh, "human36") if gt_h36m_mm is None else gt_h36m_mm
    pred_h36 = root_relative(pred_h36, pred_h36[:, HUMAN36.root])
    gt_h36 = root_relative(gt_h36, gt_h36[:, HUMAN36.root])
    eval_idx = list(HUMAN36.eval_joints)
    return {
        "MPJPE": metrics.mpjpe(pred_h36[:, eval_idx], gt_h36[:, eval_idx]),
        "PA-MPJPE": metrics.pa_mpjpe(pred_h36[:, eval_idx], gt_h36[:, eval_idx]),
        "SMPL-MPJPE": metrics.mpjpe(
            root_relative(pred_smpl, pred_smpl[:, 0]), root_relative(gt_smpl, gt_smpl[:, 0])
        ),
        "MPVPE": metrics.mpvpe(pred_mesh, gt_mesh),
        "PA-MPVPE": metrics.pa_mpvpe(pred_mesh, gt_mesh),
    }


# ----------------------------------------------------------------------- gendered layers
def parse_gender(value, path: Path) -> int:
    """'male'/'m', 'female'/'f', 'neutral'/'n' (any case), or SURREAL's integer code
    (0 female, 1 male) -> :data:`GENDER_CODES` value."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value in (0, 1):
        return GENDER_CODES["male" if value == 1 else "female"]
    text = str(value).strip().lower()
    for name, code in GENDER_CODES.items():
        if text in (name, name[0]):
            return code
    raise Pose2MeshError(f"malformed {path}: gender {value!r} is not 'male', 'female' or 'neutral'")


class GenderedLayers:
    """Male/female SMPL layers built on first use (from ``SMPL_DIR``) and moved to the
    batch's device; the neutral one is the experiment's body model. Not pickled to
    DataLoader workers (only ``prepare_batch`` uses them)."""

    def __init__(self, cfg, name: str = "smpl"):
        self._args = {"smpl_dir": cfg.SMPL_DIR, "mano_dir": cfg.MANO_DIR, "data_dir": cfg.DATA_DIR}
        self._name = name
        self._layers: dict[str, torch.nn.Module] = {}

    def __getstate__(self):
        return {"_args": self._args, "_name": self._name, "_layers": {}}

    def layer(self, gender: str, device: torch.device):
        if gender not in self._layers:
            from pose2mesh.body_models import build_body_model

            self._layers[gender] = build_body_model(self._name, gender=gender, **self._args).eval()
        self._layers[gender] = self._layers[gender].to(device)
        return self._layers[gender]

    def forward(self, neutral_model, gender_code: torch.Tensor, pose_aa, shape, transl_m=None):
        """Vertices and FK joints (metres) of each sample from its own gender's layer
        (:data:`GENDER_CODES`; neutral samples use ``neutral_model``), one pass per gender."""
        parts = []
        for gender, code in GENDER_CODES.items():
            chosen = (gender_code == code).nonzero().flatten()
            if len(chosen) == 0:
                continue
            layer = neutral_model if gender == "neutral" else self.layer(gender, pose_aa.device)
            params = {"pose_aa": pose_aa[chosen], "shape": shape[chosen]}
            if transl_m is not None:
                params["transl_m"] = transl_m[chosen]
            output = layer(**params)
            parts.append((chosen, output.vertices_m, output.joints_m))
        size = len(gender_code)
        vertices = parts[0][1].new_empty((size, *parts[0][1].shape[1:]))
        joints = parts[0][2].new_empty((size, *parts[0][2].shape[1:]))
        for chosen, v, j in parts:
            vertices[chosen], joints[chosen] = v, j
        return vertices, joints
