"""MuCo-3DHP with SMPL fits (training only; DATA_FORMATS section 5).

Files under ``DATA_DIR/MuCo/data`` (see data/MuCo/README.md): ``MuCo-3DHP.json`` (COCO style;
images with ``f``, ``c``; annotations with ``keypoints_cam`` 21x3 mm in the MuCo joint order,
``keypoints_img``, ``bbox``) and ``smpl_param.json`` (``{annotation_id: {pose, shape, trans}}``,
camera frame, trans in metres).

Images are read in the order of ``MuCo-3DHP.json`` (as the original, through pycocotools); per
image only the person closest to the camera (smallest Pelvis depth) is used; it is dropped
(counted and logged) if its box is invalid, its SMPL fit is missing or holds a NaN.
``prepare_batch`` builds the neutral SMPL mesh with translation and shape clamp in the camera
frame, regresses and projects the joints with the image's camera.

Fitting check (fix of bug 10.3): the original compared scrambled joints and, as written, masked
essentially every sample. Here the GT ``keypoints_cam`` are compared with ``J_h36m`` of the
mesh on the 14 joints both sets share by name (hips, knees, ankles, shoulders, elbows, wrists,
Pelvis, Head), after translation alignment; a mean distance above 45 mm masks the mesh,
regression and lift targets (also for PoseNet, whose lift target comes from the same mesh).
The original runs no fitting check in PoseNet mode; here PoseNet's lift target is masked by
the same check. The noise follows the common order (error model, then flip; area of the tight
box) instead of MuCo's flip-first order and processed-box area (10.7). Shared differences
(:mod:`pose2mesh.datasets.benchmark`): recomputed noisy Pelvis and Neck with coco input
(10.8), the mesh rotated with a rotation augmentation and no flip for mesh models (10.6), a
degenerate 2D box masked instead of crashing (10.15), per-sample seeded draws (10.20).
"""

from __future__ import annotations

import numpy as np

from pose2mesh.camera import process_bbox
from pose2mesh.datasets.annotation_files import as_array, parsing, rows_to_table
from pose2mesh.datasets.benchmark import BenchmarkDataset
from pose2mesh.datasets.registry import register_dataset
from pose2mesh.datasets.smpl_targets import clamp_shape, translation_aligned_error_mm
from pose2mesh.joint_sets import HUMAN36


MUCO_JOINTS = (
    "Head_top",
    "Thorax",
    "R_Shoulder",
    "R_Elbow",
    "R_Wrist",
    "L_Shoulder",
    "L_Elbow",
    "L_Wrist",
    "R_Hip",
    "R_Knee",
    "R_Ankle",
    "L_Hip",
    "L_Knee",
    "L_Ankle",
    "Pelvis",
    "Spine",
    "Head",
    "R_Hand",
    "L_Hand",
    "R_Toe",
    "L_Toe",
)
MUCO_ROOT = MUCO_JOINTS.index("Pelvis")
SHARED_NAMES = tuple(name for name in HUMAN36.joint_names if name in MUCO_JOINTS)
MUCO_SHARED = tuple(MUCO_JOINTS.index(name) for name in SHARED_NAMES)
H36M_SHARED = tuple(HUMAN36.joint_names.index(name) for name in SHARED_NAMES)
FIT_THRESHOLD_MM = 45.0
FIT_REASON = f"fitting check (mean joint error of the SMPL fit > {FIT_THRESHOLD_MM:g} mm)"


class MuCo(BenchmarkDataset):
    name = "MuCo"
    synthetic_noise = True
    train_only = True

    def __init__(self, cfg, split: str):
        super().__init__(cfg, split)
        data_path = self.path("data", "MuCo-3DHP.json")
        fit_path = self.path("data", "smpl_param.json")
        data = self.load_json("data", "MuCo-3DHP.json")
        fits = self.load_json("data", "smpl_param.json")
        out_h, out_w = self.input_hw
        with parsing(data_path, "image or annotation"):
            people: dict = {}
            for annotation in data["annotations"]:
                people.setdefault(annotation["image_id"], []).append(annotation)
            images = [image for image in data["images"] if image["id"] in people]  # file order
        rows, counts = [], {"invalid bounding box": 0, "no SMPL fit": 0, "NaN in the SMPL fit": 0}
        for image in images:
            image_id = image["id"]
            with parsing(data_path, "image or annotation"):
                cams = [
                    as_array(a["keypoints_cam"], (21, 3), data_path, "keypoints_cam") for a in people[image_id]
                ]
                closest = int(np.argmin([cam[MUCO_ROOT, 2] for cam in cams]))
                annotation = people[image_id][closest]
                bbox = as_array(annotation["bbox"], (4,), data_path, "bbox")
                focal = as_array(image["f"], (2,), data_path, "f").reshape(2)
                princpt = as_array(image["c"], (2,), data_path, "c").reshape(2)
            if process_bbox(bbox, out_w / out_h) is None:
                counts["invalid bounding box"] += 1
                continue
            fit = fits.get(str(annotation["id"]))
            if fit is None:
                counts["no SMPL fit"] += 1
                continue
            with parsing(fit_path, "SMPL fit"):
                row = {
                    "pose_aa": as_array(fit["pose"], (72,), fit_path, "pose").reshape(24, 3),
                    "shape": as_array(fit["shape"], (10,), fit_path, "shape"),
                    "trans_m": as_array(fit["trans"], (3,), fit_path, "trans").reshape(3),
                }
            if any(np.isnan(value).any() for value in row.values()):
                counts["NaN in the SMPL fit"] += 1
                continue
            row.update(focal=focal, princpt=princpt, keypoints_cam_mm=cams[closest])
            rows.append(row)
        for reason, count in counts.items():
            self.report_skipped(reason, count, len(people), fit_path if "SMPL" in reason else data_path)
        self.set_table(
            rows_to_table(rows, ("pose_aa", "shape", "trans_m", "focal", "princpt", "keypoints_cam_mm"))
        )

    def build_targets(self, batch, body_model):
        vertices_m = body_model(
            pose_aa=batch["pose_aa"].float(), shape=clamp_shape(batch["shape"].float()),
            transl_m=batch["trans_m"].float(),
        ).vertices_m
        mesh_mm = vertices_m * 1000.0
        h36m_fit = body_model.regress_joints(mesh_mm, "human36")
        gt = batch["keypoints_cam_mm"].float()[:, list(MUCO_SHARED)]
        bad_fit = translation_aligned_error_mm(gt, h36m_fit[:, list(H36M_SHARED)]) > FIT_THRESHOLD_MM
        self.mask_log.record(FIT_REASON, bad_fit)
        targets = self.pinhole_mesh_targets(batch, body_model, mesh_mm, self.input_from_mesh(body_model, mesh_mm),
                                            batch["focal"].float(), batch["princpt"].float())
        return {**targets, "lift_ok": ~bad_fit, "reg_ok": ~bad_fit, "mesh_ok": ~bad_fit}


@register_dataset("MuCo")
def build_muco(cfg, split, body_model):
    return MuCo(cfg, split)
