"""FreiHAND in the official Pose2Mesh format (DATA_FORMATS section 8).

Files under ``DATA_DIR/FreiHAND/data`` (see data/FreiHAND/README.md):

* train: ``freihand_train_coco.json`` (images with ``db_idx``; annotations with ``bbox``),
  ``freihand_train_data.json`` (``{db_idx: {cam_param {R, t, focal, princpt}, mano_param
  {pose 48, shape 10}, joint_3d}}``), ``hrnet_output_on_trainset.json``;
* test: ``freihand_eval_coco.json``, ``freihand_eval_data.json`` (cameras only: the public
  evaluation set has **no ground truth**) and ``hrnet_output_on_testset.json``.

The input is always the HRNet detection (21 MANO-order keypoints, matched by image id), never
augmented. Training samples: the MANO root rotation is composed with ``R`` (1.4), the layer runs
with the mean hand pose added (``flat_hand_mean=False``) and ``t`` as translation; the lift
target is the layer's 21 joints (16 kinematic + fingertip vertices), the regression target the
``mano`` regressor applied to the GT mesh (the same regression the prediction gets: fixes the
444/445 fingertip mismatch 10.10 and the FK-vs-regressed mismatch 10.18 in the loss), the mesh
relative to the regressed wrist. Training samples with an invalid box are dropped and counted.

Evaluation: test samples have no ground truth, so every per-sample error is NaN (the original
printed zeros) and the predictions are collected instead; :meth:`FreiHAND.export_predictions`
writes ``pred.json`` = ``[joints, verts]`` in millimetres (joints = ``mano`` regressor applied to
the predicted, root-relative mesh; for PoseNet the lifted joints in both slots), ready for the
official FreiHAND evaluation. A ``train`` split used as test set has GT and gets the base metrics.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from pose2mesh.camera import process_bbox
from pose2mesh.datasets.annotation_files import as_array, parsing
from pose2mesh.datasets.benchmark import BenchmarkDataset
from pose2mesh.datasets.registry import register_dataset
from pose2mesh.errors import Pose2MeshError
from pose2mesh.rotations import compose_root_rotation

logger = logging.getLogger("pose2mesh.datasets")
PREDICTION_FILE = "pred.json"


class FreiHAND(BenchmarkDataset):
    name = "FreiHAND"
    body_models = ("mano",)
    input_sets = ("mano",)
    target_sets = ("mano",)
    augment = False
    detections = "always"

    def __init__(self, cfg, split: str):
        super().__init__(cfg, split)
        self.has_ground_truth = split == "train"
        prefix, det_name = ("train", "trainset") if split == "train" else ("eval", "testset")
        coco_path = self.path("data", f"freihand_{prefix}_coco.json")
        data_path = self.path("data", f"freihand_{prefix}_data.json")
        coco = self.load_json("data", f"freihand_{prefix}_coco.json")
        db = self.load_json("data", f"freihand_{prefix}_data.json")
        out_h, out_w = self.input_hw
        rows, bad_box = [], 0
        with parsing(coco_path, "image or annotation"):
            images = {image["id"]: image for image in coco["images"]}
            # Image-id order, as the original (the FreiHAND server scores pred.json by slot).
            annotations = sorted(coco["annotations"], key=lambda annotation: annotation["image_id"])
        for annotation in annotations:
            with parsing(coco_path, "image or annotation"):
                image_id = annotation["image_id"]
                db_idx = str(images[image_id]["db_idx"])
                bbox = as_array(annotation["bbox"], (4,), coco_path, "bbox")
            if self.has_ground_truth and process_bbox(bbox, out_w / out_h) is None:
                bad_box += 1
                continue
            if db_idx not in db:
                raise Pose2MeshError(f"malformed {data_path}: missing key '{db_idx}' (db_idx of image {image_id})")
            row = {"image_id": image_id}
            if self.has_ground_truth:
                with parsing(data_path, "entry"):
                    cam, mano = db[db_idx]["cam_param"], db[db_idx]["mano_param"]
                    row.update(
                        pose_aa=as_array(mano["pose"], (48,), data_path, "mano_param.pose").reshape(16, 3),
                        shape=as_array(mano["shape"], (10,), data_path, "mano_param.shape"),
                        cam_R=as_array(cam["R"], (3, 3), data_path, "cam_param.R"),
                        cam_t_m=as_array(cam["t"], (3,), data_path, "cam_param.t").reshape(3),
                    )
            rows.append(row)
        self.report_skipped("invalid bounding box", bad_box, len(annotations), coco_path)
        self.image_ids = [row.pop("image_id") for row in rows]
        keys = ("pose_aa", "shape", "cam_R", "cam_t_m") if self.has_ground_truth else ()
        table = {key: np.stack([row[key] for row in rows]) for key in keys}
        table["det_px"] = self.detections_by_image_id(f"hrnet_output_on_{det_name}.json", 21) if rows else np.zeros((0,))
        self.set_table(table)
        self.image_ids = self.image_ids[: len(self)]
        self._pred_joints: np.ndarray | None = None
        self._pred_verts: np.ndarray | None = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pred_joints"] = state["_pred_verts"] = None  # workers never need predictions
        return state

    # ---------------------------------------------------------------- batch
    def build_targets(self, batch, body_model):
        det = batch["det_px"].float()
        size, device = len(det), det.device
        extra = {"sample_index": batch["sample_index"]}
        if not self.has_ground_truth:
            joints = torch.zeros(size, self.joint_set.num_joints, 3, device=device)
            none = torch.zeros(size, dtype=torch.bool, device=device)
            return {
                "det_px": det,
                "input_cam_mm": joints,
                "reg_cam_mm": joints.clone(),
                "mesh_cam_mm": torch.zeros(size, body_model.num_vertices, 3, device=device),
                "mesh_root_mm": torch.zeros(size, 3, device=device),
                "lift_ok": none,
                "reg_ok": none,
                "mesh_ok": none,
                "extra": extra,
            }
        pose = compose_root_rotation(batch["pose_aa"].float(), batch["cam_R"].float())
        output = body_model(pose_aa=pose, shape=batch["shape"].float(), transl_m=batch["cam_t_m"].float())
        mesh_mm = output.vertices_m * 1000.0
        reg_cam = body_model.regress_joints(mesh_mm, "mano")
        return {
            "det_px": det,
            "input_cam_mm": output.joints_m * 1000.0,
            "reg_cam_mm": reg_cam,
            "mesh_cam_mm": mesh_mm,
            "mesh_root_mm": reg_cam[:, self.target_joint_set.root],
            "extra": extra,
        }

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate_batch(self, outputs, batch, body_model):
        if self.predicts_mesh:
            verts_mm = outputs["mesh_m"].float() * 1000.0
            joints_mm = body_model.regress_joints(verts_mm, "mano")
        else:
            joints_mm = verts_mm = outputs["pose3d_mm"].float()
        self._collect(batch["sample_index"], joints_mm, verts_mm)
        if self.has_ground_truth:
            return super().evaluate_batch(outputs, batch, body_model)
        nan = torch.full((len(joints_mm),), float("nan"), device=joints_mm.device)
        errors = {"MPJPE": nan, "PA-MPJPE": nan}
        if self.predicts_mesh:
            errors.update({"MPVPE": nan, "PA-MPVPE": nan})
        return errors

    def _collect(self, index: torch.Tensor, joints_mm: torch.Tensor, verts_mm: torch.Tensor) -> None:
        if self._pred_joints is None or self._pred_verts.shape[1] != verts_mm.shape[1]:
            self._pred_joints = np.full((len(self), *joints_mm.shape[1:]), np.nan, dtype=np.float32)
            self._pred_verts = np.full((len(self), *verts_mm.shape[1:]), np.nan, dtype=np.float32)
        idx = index.cpu().numpy()
        self._pred_joints[idx] = joints_mm.cpu().numpy()
        self._pred_verts[idx] = verts_mm.cpu().numpy()

    def prediction_state(self) -> dict[str, np.ndarray] | None:
        """This process's predictions of the last evaluation: ``index`` (n,), ``joints``
        (n, 21, 3) and ``verts`` (n, V, 3) mm; None before any evaluation. Under DDP, gather
        these from every rank and pass them to :meth:`export_predictions`."""
        if self._pred_joints is None:
            return None
        index = np.flatnonzero(~np.isnan(self._pred_joints).any(axis=(1, 2)))
        return {"index": index, "joints": self._pred_joints[index], "verts": self._pred_verts[index]}

    def export_predictions(self, result_dir: str | os.PathLike, states: list | None = None) -> Path | None:
        """Write the predictions of the last evaluation to ``<result_dir>/pred.json``
        (``[joints (N, 21, 3), verts (N, V, 3)]``, mm, sample order).

        Args:
            states: :meth:`prediction_state` of every process (DDP); None = this process's.
        Returns:
            the file, or None if nothing was predicted.
        Raises:
            Pose2MeshError: some test samples have no prediction.
        """
        states = [s for s in (states if states is not None else [self.prediction_state()]) if s is not None]
        if not states:
            return None
        joints = np.full((len(self), *states[0]["joints"].shape[1:]), np.nan, dtype=np.float32)
        verts = np.full((len(self), *states[0]["verts"].shape[1:]), np.nan, dtype=np.float32)
        for state in states:
            joints[state["index"]], verts[state["index"]] = state["joints"], state["verts"]
        missing = np.isnan(joints).any(axis=(1, 2))
        if missing.any():
            raise Pose2MeshError(
                f"FreiHAND: {int(missing.sum())} of {len(missing)} test samples have no prediction; "
                "evaluate the whole test set before exporting pred.json"
            )
        path = Path(result_dir) / PREDICTION_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps([joints.tolist(), verts.tolist()]))
        os.replace(tmp, path)
        logger.info("FreiHAND: wrote %d predictions to %s", len(joints), path)
        return path


@register_dataset("FreiHAND")
def build_freihand(cfg, split, body_model):
    return FreiHAND(cfg, split)
