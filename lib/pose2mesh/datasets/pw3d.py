"""3DPW in the official Pose2Mesh format (``PW3D``; DATA_FORMATS section 4).

Files under ``DATA_DIR/PW3D/data`` (see data/PW3D/README.md): ``3DPW_latest_{split}.json``
(COCO style, written by the original's ``3dpw2coco.py``; SMPL parameters already in the camera
frame with the 1.4 translation compensation) and ``darkpose_3dpw_{split}set_output.json``
(COCO-17 detections with scores, keyed by annotation id). ``split`` is ``test`` or ``train``.

As the original, an annotation whose ``bbox`` fails ``process_bbox`` (a box under one pixel
wide or high) is dropped, and counted in the log. Samples are sorted by (person id, image
path); no subsampling, no shape clamp, no
augmentation. The mesh comes from the gendered SMPL layer (gender from the file) with the
file's translation. The input is the detection (19 joints: 17 + Pelvis and Neck as the mean
of hips / shoulders, scores averaged) or, with ``use_gt_input``, the input-set joints regressed
from the mesh and projected. Targets: joints regressed from the mesh; the mesh relative to the
regressed target root.

Evaluation (Pose2Mesh): meshes root-aligned on SMPL joint 0; H36M MPJPE and PA-MPJPE over the
14 evaluation joints regressed with the human36 regressor from both aligned meshes; SMPL-joint
MPJPE; MPVPE; and a real PA-MPVPE (the original printed 0, bug 10.11). PoseNet: the base
evaluation (all 19 COCO joints relative to the Pelvis).
"""

from __future__ import annotations

import numpy as np
import torch

from pose2mesh.camera import process_bbox
from pose2mesh.datasets.annotation_files import as_array, parsing, rows_to_table
from pose2mesh.datasets.benchmark import BenchmarkDataset
from pose2mesh.datasets.registry import register_dataset
from pose2mesh.datasets.smpl_targets import GenderedLayers, parse_gender, smpl_mesh_protocol_errors
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import add_pelvis_and_neck


class PW3D(BenchmarkDataset):
    name = "PW3D"
    augment = False
    detections = "unless_gt"

    def __init__(self, cfg, split: str):
        super().__init__(cfg, split)
        if self.use_detections and self.joint_set.name != "coco":
            raise Pose2MeshError(
                f"PW3D detections are COCO keypoints; with input joint set '{self.joint_set.name}' "
                "set DATASET.use_gt_input True"
            )
        self.layers = GenderedLayers(cfg)
        annotation_name = f"3DPW_latest_{split}.json"
        path = self.path("data", annotation_name)
        data = self.load_json("data", annotation_name)
        rows, bad_box = [], 0
        out_h, out_w = self.input_hw
        with parsing(path, "image or annotation"):
            images = {image["id"]: image for image in data["images"]}
            for annotation in data["annotations"]:
                image = images[annotation["image_id"]]
                # As the original: an annotation whose box fails process_bbox is dropped.
                if process_bbox(as_array(annotation["bbox"], (4,), path, "bbox"), out_w / out_h) is None:
                    bad_box += 1
                    continue
                cam, fit = image["cam_param"], annotation["smpl_param"]
                rows.append(
                    {
                        "order": (int(annotation["person_id"]), f"{image['sequence']}/{image['file_name']}"),
                        "annotation_id": str(annotation["id"]),
                        "pose_aa": as_array(fit["pose"], (72,), path, "smpl_param.pose").reshape(24, 3),
                        "shape": as_array(fit["shape"], (10,), path, "smpl_param.shape"),
                        "trans_m": as_array(fit["trans"], (3,), path, "smpl_param.trans").reshape(3),
                        "gender": np.int64(parse_gender(fit["gender"], path)),
                        "focal": as_array(cam["focal"], (2,), path, "cam_param.focal").reshape(2),
                        "princpt": as_array(cam["princpt"], (2,), path, "cam_param.princpt").reshape(2),
                    }
                )
        self.report_skipped("invalid bounding box", bad_box, len(data["annotations"]), path)
        rows.sort(key=lambda row: row["order"])
        self.annotation_ids = [row["annotation_id"] for row in rows]
        table = rows_to_table(rows, ("pose_aa", "shape", "trans_m", "gender", "focal", "princpt"))
        if self.use_detections and rows:
            table["det_px"] = self._load_detections(split)
        self.set_table(table)
        self.annotation_ids = self.annotation_ids[: len(self)]

    def _load_detections(self, split: str) -> np.ndarray:
        name = f"darkpose_3dpw_{split}set_output.json"
        path = self.path("data", name)
        entries = self.load_json("data", name)
        with parsing(path, "detection"):
            by_annotation = {str(entry["annotation_id"]): entry["keypoints"] for entry in entries}
        missing = [a for a in self.annotation_ids if a not in by_annotation]
        if missing:
            raise Pose2MeshError(
                f"malformed {path}: no detection for annotation_id {missing[0]} ({len(missing)} missing)"
            )
        keypoints = np.stack(
            [
                as_array(by_annotation[a], (17, 3), path, f"keypoints of annotation {a}")
                for a in self.annotation_ids
            ]
        )
        return add_pelvis_and_neck(keypoints)[..., :2].astype(np.float32)

    def build_targets(self, batch, body_model):
        vertices_m, _ = self.layers.forward(
            body_model, batch["gender"], batch["pose_aa"], batch["shape"], batch["trans_m"]
        )
        mesh_mm = vertices_m * 1000.0
        return self.pinhole_mesh_targets(batch, body_model, mesh_mm, self.input_from_mesh(body_model, mesh_mm),
                                         batch["focal"].float(), batch["princpt"].float())

    @torch.no_grad()
    def evaluate_batch(self, outputs, batch, body_model):
        if not self.predicts_mesh:
            return super().evaluate_batch(outputs, batch, body_model)
        return smpl_mesh_protocol_errors(body_model, outputs["mesh_m"].float() * 1000.0, batch["mesh_m"] * 1000.0)


@register_dataset("PW3D")
def build_pw3d(cfg, split, body_model):
    return PW3D(cfg, split)
