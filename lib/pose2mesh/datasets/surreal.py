"""SURREAL in the official Pose2Mesh format (DATA_FORMATS section 7).

Files under ``DATA_DIR/SURREAL/data`` (see data/SURREAL/README.md): ``train.json`` / ``val.json``
(COCO style; images with ``cam_param {focal, princpt}``, annotations with ``smpl_param {pose,
shape, trans, gender}`` in the camera frame) and the HRNet detections
``hrnet_output_on_{train,val}set.json`` (24 SMPL-order keypoints per image). The ``test`` split
reads ``val``.

The first annotation of each image is used, in image-id order; as the original, an image
whose box fails ``process_bbox`` (under one pixel wide or high) is dropped and counted in the
log. ``prepare_batch`` runs the
gendered SMPL layer with the file's translation (camera-frame metres, no shape clamp). The
smpl input is the layer's 24 forward-kinematics joints (projected, or the detection when
``use_gt_input`` is False, for training as well as testing, as the shipped configs do);
human36/coco inputs are regressed from the mesh. Targets: ``lift`` = the input joints;
``reg`` = the target joints regressed from the GT mesh, the same regression the prediction gets
(the original used the FK joints there, bug 10.18); the mesh relative to the regressed target
root. Evaluation: the base metrics with the smpl target set (MPJPE, PA-MPJPE over the 24
regressed joints, MPVPE, PA-MPVPE).

Differences from the original: detections are matched by image id rather than by position
(10.5, a missing one is an error), the training lists do not get a duplicated first element, and
the regression target is regressed from the mesh (10.18, above). Shared differences
(:mod:`pose2mesh.datasets.benchmark`): the mesh rotated with a rotation augmentation and no
flip for mesh models (10.6), a degenerate 2D box masked instead of crashing (10.15), per-sample
seeded draws (10.20).
"""

from __future__ import annotations

import numpy as np

from pose2mesh.camera import process_bbox
from pose2mesh.datasets.annotation_files import as_array, parsing, rows_to_table
from pose2mesh.datasets.benchmark import BenchmarkDataset
from pose2mesh.datasets.registry import register_dataset
from pose2mesh.datasets.smpl_targets import GenderedLayers, parse_gender
from pose2mesh.errors import Pose2MeshError


class SURREAL(BenchmarkDataset):
    name = "SURREAL"
    detections = "unless_gt"

    def __init__(self, cfg, split: str):
        super().__init__(cfg, split)
        if self.use_detections and self.joint_set.name != "smpl":
            raise Pose2MeshError(
                f"SURREAL detections are SMPL-joint keypoints; with input joint set '{self.joint_set.name}' "
                "set DATASET.use_gt_input True"
            )
        self.layers = GenderedLayers(cfg)
        self.file_split = "train" if split == "train" else "val"
        name = f"{self.file_split}.json"
        path = self.path("data", name)
        data = self.load_json("data", name)
        rows, first, bad_box = [], {}, 0
        out_h, out_w = self.input_hw
        with parsing(path, "image or annotation"):
            images = {image["id"]: image for image in data["images"]}
            for annotation in data["annotations"]:
                first.setdefault(annotation["image_id"], annotation)
            for image_id in sorted(first):
                # As the original: an image whose (first) box fails process_bbox is dropped.
                if process_bbox(as_array(first[image_id]["bbox"], (4,), path, "bbox"), out_w / out_h) is None:
                    bad_box += 1
                    continue
                image, fit = images[image_id], first[image_id]["smpl_param"]
                cam = image["cam_param"]
                rows.append(
                    {
                        "image_id": image_id,
                        "pose_aa": as_array(fit["pose"], (72,), path, "smpl_param.pose").reshape(24, 3),
                        "shape": as_array(fit["shape"], (10,), path, "smpl_param.shape"),
                        "trans_m": as_array(fit["trans"], (3,), path, "smpl_param.trans").reshape(3),
                        "gender": np.int64(parse_gender(fit["gender"], path)),
                        "focal": as_array(cam["focal"], (2,), path, "cam_param.focal").reshape(2),
                        "princpt": as_array(cam["princpt"], (2,), path, "cam_param.princpt").reshape(2),
                    }
                )
        self.report_skipped("invalid bounding box", bad_box, len(first), path)
        self.image_ids = [row.pop("image_id") for row in rows]
        table = rows_to_table(rows, ("pose_aa", "shape", "trans_m", "gender", "focal", "princpt"))
        if self.use_detections and rows:
            table["det_px"] = self._load_detections()
        self.set_table(table)
        self.image_ids = self.image_ids[: len(self)]

    def _load_detections(self) -> np.ndarray:
        return self.detections_by_image_id(f"hrnet_output_on_{self.file_split}set.json", 24)

    def build_targets(self, batch, body_model):
        vertices_m, joints_m = self.layers.forward(
            body_model, batch["gender"], batch["pose_aa"], batch["shape"], batch["trans_m"]
        )
        mesh_mm = vertices_m * 1000.0
        input_cam = (
            joints_m * 1000.0 if self.joint_set.name == "smpl" else self.input_from_mesh(body_model, mesh_mm)
        )
        return self.pinhole_mesh_targets(batch, body_model, mesh_mm, input_cam,
                                         batch["focal"].float(), batch["princpt"].float())


@register_dataset("SURREAL")
def build_surreal(cfg, split, body_model):
    return SURREAL(cfg, split)
