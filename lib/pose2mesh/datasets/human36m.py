"""Human3.6M in the official Pose2Mesh format (DATA_FORMATS section 2).

Files under ``DATA_DIR/Human36M`` (see data/Human36M/README.md): per subject S,
``annotations/Human36M_subject{S}_{data,camera,joint_3d,smpl_param}.json``; the H36M joint
regressor ``J_regressor_h36m_correct.npy`` (read by the SMPL body model); and, for testing
with detections, ``absnet_output_on_testset.json``.

Protocol 2: train S1, S5, S6, S7, S8 (every 5th frame), test S9, S11 (every 50th frame).
Frames without a SMPL fit or with an invalid annotation box are dropped, counted and logged.
Each item holds the world-frame SMPL parameters, the camera and the camera-frame GT joints
(``R X + t``, mm); ``prepare_batch`` builds the camera-frame mesh in batch (1.4, neutral,
shape clamp), the inputs (GT H36M joints, or COCO/SMPL joints regressed from the mesh, projected
with the camera), the Gaussian 2D error model (human36 input) or PoseFix model (coco input)
for training with ``use_gt_input`` False, and the fitting check (mean translation-aligned
distance between the GT joints and ``J_h36m`` mesh > 25 mm masks the mesh, and the lift
target for coco/smpl input).

Evaluation (Pose2Mesh): H36M MPJPE / PA-MPJPE over the 14 evaluation joints (from the
root-aligned predicted mesh against the dataset joints), SMPL-joint MPJPE, MPVPE and PA-MPVPE;
:meth:`Human36M.summarize` adds the means per action (``MPJPE/Directions`` ...).

Differences from the original (DATA_FORMATS section 10): the action comes from the image's
``action_idx`` field, not from the first "act" in the path (10.14); test detections are matched
to samples by image name, not by position in a sorted list (10.5), and a missing entry is an
error; coco/smpl input with detections is refused with a clear error instead of crashing
(10.4); the mesh is made relative to the regressed pelvis (10.9, see benchmark).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from pose2mesh.camera import process_bbox, project_perspective
from pose2mesh.datasets.annotation_files import as_array, parsing, rows_to_table
from pose2mesh.datasets.benchmark import BenchmarkDataset
from pose2mesh.datasets.registry import register_dataset
from pose2mesh.datasets.smpl_targets import (
    clamp_shape,
    smpl_mesh_protocol_errors,
    translation_aligned_error_mm,
    world_to_camera_mesh,
)
from pose2mesh.errors import Pose2MeshError

logger = logging.getLogger("pose2mesh.datasets")

TRAIN_SUBJECTS = (1, 5, 6, 7, 8)
TEST_SUBJECTS = (9, 11)
ACTIONS = (
    "Directions",
    "Discussion",
    "Eating",
    "Greeting",
    "Phoning",
    "Posing",
    "Purchases",
    "Sitting",
    "SittingDown",
    "Smoking",
    "Photo",
    "Waiting",
    "Walking",
    "WalkDog",
    "WalkTogether",
)
FIRST_ACTION_IDX = 2  # act_02 is "Directions"
FIT_THRESHOLD_MM = 25.0
FIT_REASON = f"fitting check (mean H36M-joint error of the SMPL fit > {FIT_THRESHOLD_MM:g} mm)"
DETECTION_FILE = "absnet_output_on_testset.json"
COLUMNS = ("pose_aa", "shape", "trans_world_m", "cam_R", "cam_t_mm", "focal", "princpt", "joint_cam_mm", "action")


class Human36M(BenchmarkDataset):
    name = "Human36M"
    synthetic_noise = True
    detections = "test"

    def __init__(self, cfg, split: str):
        super().__init__(cfg, split)
        if self.use_detections and self.joint_set.name != "human36":
            raise Pose2MeshError(
                f"Human36M has test detections only for the human36 joint set ({DETECTION_FILE}); "
                f"with input joint set '{self.joint_set.name}' set DATASET.use_gt_input True"
            )
        subjects = TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS
        if self.debug_max_samples > 0:
            subjects = subjects[:1]
        self.frame_step = 5 if split == "train" else 50
        rows: list[dict] = []
        for subject in subjects:
            rows.extend(self._load_subject(subject))
        rows.sort(key=lambda row: row["basename"])
        self.image_names = [row.pop("basename") for row in rows]
        table = rows_to_table(rows, COLUMNS)
        if self.use_detections and rows:
            table["det_px"] = self._load_detections()
        self.set_table(table)
        self.image_names = self.image_names[: len(self)]

    def _load_subject(self, subject: int) -> list[dict]:
        prefix = f"Human36M_subject{subject}"
        data_path = self.path("annotations", f"{prefix}_data.json")
        camera_path = self.path("annotations", f"{prefix}_camera.json")
        joint_path = self.path("annotations", f"{prefix}_joint_3d.json")
        smpl_path = self.path("annotations", f"{prefix}_smpl_param.json")
        data = self.load_json("annotations", f"{prefix}_data.json")
        cameras = self.load_json("annotations", f"{prefix}_camera.json")
        joints = self.load_json("annotations", f"{prefix}_joint_3d.json")
        smpl = self.load_json("annotations", f"{prefix}_smpl_param.json")
        out_h, out_w = self.input_hw

        with parsing(data_path, "image or annotation"):
            images = {image["id"]: image for image in data["images"]}
            annotations = data["annotations"]
            parsed_cameras = {}
        with parsing(camera_path, "camera"):
            for key, cam in cameras.items():
                parsed_cameras[str(key)] = {
                    "cam_R": as_array(cam["R"], (3, 3), camera_path, "R"),
                    "cam_t_mm": as_array(cam["t"], (3,), camera_path, "t").reshape(3),
                    "focal": as_array(cam["f"], (2,), camera_path, "f").reshape(2),
                    "princpt": as_array(cam["c"], (2,), camera_path, "c").reshape(2),
                }
        rows, total, no_fit, bad_box = [], 0, 0, 0
        for annotation in annotations:
            with parsing(data_path, "image or annotation"):
                image = images[annotation["image_id"]]
                frame = int(image["frame_idx"])
                if frame % self.frame_step:
                    continue
                total += 1
                act, sub, cam_idx = str(image["action_idx"]), str(image["subaction_idx"]), str(image["cam_idx"])
                bbox = as_array(annotation["bbox"], (4,), data_path, "bbox")
                basename = os.path.basename(image["file_name"])
                action = int(image["action_idx"]) - FIRST_ACTION_IDX
            fit = smpl.get(act, {}).get(sub, {}).get(str(frame))
            if fit is None:
                no_fit += 1
                continue
            if process_bbox(bbox, out_w / out_h) is None:
                bad_box += 1
                continue
            if cam_idx not in parsed_cameras:
                raise Pose2MeshError(f"malformed {camera_path}: missing key '{cam_idx}' (camera of {basename})")
            with parsing(joint_path, "action/subaction/frame entry"):
                world_mm = as_array(joints[act][sub][str(frame)], (17, 3), joint_path, f"{act}/{sub}/{frame}")
            with parsing(smpl_path, "SMPL fit"):
                row = {
                    "pose_aa": as_array(fit["pose"], (72,), smpl_path, "pose").reshape(24, 3),
                    "shape": as_array(fit["shape"], (10,), smpl_path, "shape"),
                    "trans_world_m": as_array(fit["trans"], (3,), smpl_path, "trans").reshape(3),
                }
            camera = parsed_cameras[cam_idx]
            row.update(camera)
            row["joint_cam_mm"] = (world_mm @ camera["cam_R"].T + camera["cam_t_mm"]).astype(np.float32)
            row["action"] = np.int64(action)
            row["basename"] = basename
            rows.append(row)
        self.report_skipped("no SMPL fit", no_fit, total, smpl_path)
        self.report_skipped("invalid bounding box", bad_box, total, data_path)
        return rows

    def _load_detections(self) -> np.ndarray:
        path = self.path(DETECTION_FILE)
        detections = self.load_json(DETECTION_FILE)
        if not isinstance(detections, dict):
            raise Pose2MeshError(f"malformed {path}: expected an object keyed by image name")
        missing = [name for name in self.image_names if name not in detections]
        if missing:
            raise Pose2MeshError(
                f"malformed {path}: missing key '{missing[0]}' ({len(missing)} test images have no detection)"
            )
        return np.stack([as_array(detections[name], (17, 2), path, name) for name in self.image_names])

    # ---------------------------------------------------------------- batch
    def build_targets(self, batch, body_model):
        gt_mm = batch["joint_cam_mm"].float()
        focal, princpt = batch["focal"].float(), batch["princpt"].float()
        need_mesh = (
            self.has_mesh_targets or self.joint_set.name != "human36" or self.target_joint_set.name != "human36"
        )
        targets = {"extra": {"h36m_gt_mm": gt_mm}}
        if self.use_detections:
            targets["det_px"] = batch["det_px"].float()
        if not need_mesh:
            targets.update(
                input_cam_mm=gt_mm, input_px=project_perspective(gt_mm, focal, princpt), reg_cam_mm=gt_mm
            )
            return targets
        vertices_m, _ = world_to_camera_mesh(
            body_model,
            batch["pose_aa"],
            clamp_shape(batch["shape"].float()),
            batch["cam_R"],
            batch["cam_t_mm"].float() / 1000.0,
            batch["trans_world_m"],
        )
        mesh_mm = vertices_m * 1000.0
        h36m_fit = body_model.regress_joints(mesh_mm, "human36")
        bad_fit = translation_aligned_error_mm(gt_mm, h36m_fit) > FIT_THRESHOLD_MM
        if self.has_mesh_targets or self.joint_set.name != "human36":
            self.mask_log.record(FIT_REASON, bad_fit)
        input_cam = gt_mm if self.joint_set.name == "human36" else self.input_from_mesh(body_model, mesh_mm)
        if self.target_joint_set.name == "human36":
            reg_cam, target_from_mesh = gt_mm, h36m_fit
        else:
            reg_cam = target_from_mesh = body_model.regress_joints(mesh_mm, self.target_joint_set.name)
        targets.update(
            input_cam_mm=input_cam,
            input_px=project_perspective(input_cam, focal, princpt),
            reg_cam_mm=reg_cam,
            mesh_cam_mm=mesh_mm,
            mesh_root_mm=target_from_mesh[:, self.target_joint_set.root],
            mesh_ok=~bad_fit,
            lift_ok=~bad_fit if self.joint_set.name != "human36" else torch.ones_like(bad_fit),
        )
        return targets

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate_batch(self, outputs, batch, body_model):
        if not self.predicts_mesh:
            return super().evaluate_batch(outputs, batch, body_model)
        return smpl_mesh_protocol_errors(
            body_model, outputs["mesh_m"].float() * 1000.0, batch["mesh_m"] * 1000.0, batch["h36m_gt_mm"]
        )

    def summarize(self, per_sample: dict[str, np.ndarray]) -> dict[str, float]:
        """Protocol-2 means and, when the errors cover the test set in order, per-action means."""
        summary = super().summarize(per_sample)
        actions = self.table["action"]
        lengths = {len(values) for values in per_sample.values()}
        if lengths != {len(actions)}:
            logger.warning(
                "Human36M: %s per-sample errors for %d samples; per-action means skipped", lengths, len(actions)
            )
            return summary
        for key, values in per_sample.items():
            for index, action in enumerate(ACTIONS):
                chosen = actions == index
                if chosen.any():
                    summary[f"{key}/{action}"] = float(np.mean(values[chosen]))
        return summary


@register_dataset("Human36M")
def build_human36m(cfg, split, body_model):
    return Human36M(cfg, split)
