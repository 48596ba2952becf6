"""COCO 2017 keypoints with SMPLify fits (training only; DATA_FORMATS section 3).

Files under ``DATA_DIR/COCO`` (see data/COCO/README.md): ``annotations/
person_keypoints_train2017.json`` (standard COCO), ``annotations/coco_smplify_train.json``
(``{annotation_id: {smpl_param {pose, shape}, cam_param {s, t}}}``, pose in the camera frame)
and ``J_regressor_coco.npy`` (read by the SMPL body model).

Annotations that are crowds, have no keypoint, have an invalid box or have no SMPLify fit are
dropped, counted and logged. ``prepare_batch`` builds the neutral SMPL mesh (pose and shape,
shape clamp), regresses the input-set and H36M joints, projects them with the weak-perspective
camera ``uv = (xy_mm / 1000) s + t``, and applies the original fitting check: the dataset's
keypoints and the mesh's COCO keypoints are mapped into a 64x64 crop of the (square) box of the
projected input joints; a mean distance over the valid keypoints above 3 pixels masks every
target of the sample (mesh, regression and lift), and the count is logged.

The split is always the training annotations (the original forces it); building the ``test``
split logs a warning and evaluates on those same training samples with the base metrics (the
original has no evaluation for COCO).

Differences from the original, kept on purpose (DATA_FORMATS section 10, implemented in
:mod:`pose2mesh.datasets.benchmark`): with coco input the noisy Pelvis and Neck are
recomputed from the noisy hips and shoulders (10.8); a rotation augmentation also rotates the
mesh, and a flip is refused for mesh models (10.6); a degenerate 2D box masks the sample
instead of crashing (10.15); the noise and augmentation draws are seeded per sample (10.20).
"""

from __future__ import annotations

import numpy as np

from pose2mesh.camera import process_bbox
from pose2mesh.datasets.annotation_files import as_array, parsing, rows_to_table
from pose2mesh.datasets.benchmark import BenchmarkDataset
from pose2mesh.datasets.registry import register_dataset
from pose2mesh.datasets.smpl_targets import clamp_shape, crop64_error_px


FIT_THRESHOLD_PX = 3.0
FIT_REASON = f"fitting check (mean keypoint error of the SMPLify fit > {FIT_THRESHOLD_PX:g} px in a 64x64 crop)"


def project_weak_perspective_mm(points_mm, scale, trans):
    """COCO's camera: (B, N, 3) mm, (B, 2) pixels per metre, (B, 2) pixels -> (B, N, 2)."""
    return points_mm[..., :2] / 1000.0 * scale[:, None, :] + trans[:, None, :]


class COCO(BenchmarkDataset):
    name = "COCO"
    synthetic_noise = True
    train_only = True

    def __init__(self, cfg, split: str):
        super().__init__(cfg, split)
        keypoint_path = self.path("annotations", "person_keypoints_train2017.json")
        fit_path = self.path("annotations", "coco_smplify_train.json")
        data = self.load_json("annotations", "person_keypoints_train2017.json")
        fits = self.load_json("annotations", "coco_smplify_train.json")
        out_h, out_w = self.input_hw
        rows, total, counts = [], 0, {"crowd or no keypoint": 0, "invalid bounding box": 0, "no SMPLify fit": 0}
        with parsing(keypoint_path, "annotation"):
            annotations = data["annotations"]
        for annotation in annotations:
            total += 1
            with parsing(keypoint_path, "annotation"):
                if annotation.get("iscrowd", 0) or int(annotation["num_keypoints"]) == 0:
                    counts["crowd or no keypoint"] += 1
                    continue
                bbox = as_array(annotation["bbox"], (4,), keypoint_path, "bbox")
                keypoints = as_array(annotation["keypoints"], (51,), keypoint_path, "keypoints").reshape(17, 3)
                key = str(annotation["id"])
            if process_bbox(bbox, out_w / out_h) is None:
                counts["invalid bounding box"] += 1
                continue
            if key not in fits:
                counts["no SMPLify fit"] += 1
                continue
            with parsing(fit_path, "SMPLify entry"):
                fit, cam = fits[key]["smpl_param"], fits[key]["cam_param"]
                scale = np.broadcast_to(np.asarray(cam["s"], dtype=np.float32).reshape(-1), (2,))
                rows.append(
                    {
                        "pose_aa": as_array(fit["pose"], (72,), fit_path, "smpl_param.pose").reshape(24, 3),
                        "shape": as_array(fit["shape"], (10,), fit_path, "smpl_param.shape"),
                        "cam_scale": scale.copy(),
                        "cam_trans": as_array(cam["t"], (2,), fit_path, "cam_param.t").reshape(2),
                        "keypoints_px": keypoints[:, :2].copy(),
                        "keypoints_valid": (keypoints[:, 2] > 0).astype(np.float32),
                    }
                )
        self.report_skipped("crowd or no keypoint", counts["crowd or no keypoint"], total, keypoint_path)
        self.report_skipped("invalid bounding box", counts["invalid bounding box"], total, keypoint_path)
        self.report_skipped("no SMPLify fit", counts["no SMPLify fit"], total, fit_path)
        self.set_table(
            rows_to_table(rows, ("pose_aa", "shape", "cam_scale", "cam_trans", "keypoints_px", "keypoints_valid"))
        )

    def build_targets(self, batch, body_model):
        vertices_m = body_model(
            pose_aa=batch["pose_aa"].float(), shape=clamp_shape(batch["shape"].float())
        ).vertices_m
        mesh_mm = vertices_m * 1000.0
        scale, trans = batch["cam_scale"].float(), batch["cam_trans"].float()
        input_cam = self.input_from_mesh(body_model, mesh_mm)
        input_px = project_weak_perspective_mm(input_cam, scale, trans)
        coco_px = project_weak_perspective_mm(body_model.regress_joints(mesh_mm, "coco")[:, :17], scale, trans)
        error = crop64_error_px(batch["keypoints_px"].float(), batch["keypoints_valid"] > 0.5, coco_px, input_px)
        bad_fit = error > FIT_THRESHOLD_PX
        self.mask_log.record(FIT_REASON, bad_fit)
        reg_cam = body_model.regress_joints(mesh_mm, self.target_joint_set.name)
        return {
            "input_cam_mm": input_cam,
            "input_px": input_px,
            "reg_cam_mm": reg_cam,
            "mesh_cam_mm": mesh_mm,
            "mesh_root_mm": reg_cam[:, self.target_joint_set.root],
            "lift_ok": ~bad_fit,
            "reg_ok": ~bad_fit,
            "mesh_ok": ~bad_fit,
        }


@register_dataset("COCO")
def build_coco(cfg, split, body_model):
    return COCO(cfg, split)
