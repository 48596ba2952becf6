"""The base class of the real-benchmark loaders, :class:`BenchmarkDataset`, and the
:class:`MaskLog` of the samples its filters mask.

:class:`BenchmarkDataset` holds a table of per-sample NumPy rows (SMPL parameters, cameras,
ground-truth joints, detections), draws the per-sample augmentation in ``__getitem__`` (a pure
function of (SEED, epoch, index)), and in ``prepare_batch`` turns the geometry a subclass
builds (:meth:`BenchmarkDataset.build_targets`) into the training contract with the batched 2D
pipeline of :mod:`pose2mesh.datasets.transforms` and the error models of
:mod:`pose2mesh.datasets.noise`. Subclasses read their files with
:mod:`pose2mesh.datasets.annotation_files` and build their SMPL/MANO targets with
:mod:`pose2mesh.datasets.smpl_targets`.

:class:`MaskLog` counts the samples each filter masks and logs them (logger
``pose2mesh.datasets``): per batch at DEBUG, per epoch (training) or per evaluation (test) at
INFO, e.g. ``Human36M train: fitting check (...) masked 12 of 640 samples in epoch 1``.

Deliberate differences from the original loaders (DATA_FORMATS section 10):

* 10.6: a rotation augmentation rotates the mesh and the regression target as well as the 2D
  input and the lifted joints (the original left the mesh unrotated); a flip is refused for
  mesh models (``AUG.flip`` is only for PoseNet, as in every shipped config).
* 10.8: with coco input, the noisy Pelvis and Neck are recomputed from the noisy hips and
  shoulders (as test-time detections are), instead of staying at their clean positions.
* 10.9: every loader makes the mesh relative to the target root regressed from the mesh
  (the original's Human36M used the dataset pelvis), so the mesh target and the evaluation
  use the same root.
* 10.15: a degenerate 2D box no longer crashes; the sample's targets are masked and counted
  (reason "degenerate 2D box").
* 10.20: all randomness is per (SEED, epoch, index) in ``__getitem__`` or from the device RNG
  in ``prepare_batch`` (which the engine seeds and checkpoints), never an unseeded global.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from pose2mesh.camera import project_perspective
from pose2mesh.datasets.annotation_files import as_array, load_json, parsing
from pose2mesh.datasets.base import Pose2MeshDataset, root_relative
from pose2mesh.datasets.noise import h36m_gaussian_offsets_px, synthesize_coco_pose
from pose2mesh.datasets.transforms import (
    crop_points,
    crop_to_pose2d,
    draw_augmentation,
    flip_crop_points,
    map_box_corners_area,
    process_bbox_batch,
    rotate_flip_3d,
    rotate_z,
    sample_rng,
    tight_bbox,
)
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import get_joint_set

logger = logging.getLogger("pose2mesh.datasets")

_AUG_DOMAIN = 5


class MaskLog:
    """Counts and logs the samples each filter masks (per epoch for training, per
    evaluation for test sets). ``totals`` keeps the counts over the object's lifetime."""

    def __init__(self, label: str):
        self.label = label
        self.current: dict[str, list[int]] = {}
        self.totals: dict[str, list[int]] = {}

    def record(self, reason: str, masked: torch.Tensor) -> None:
        """``masked`` (B,) bool: samples this filter masked in one batch."""
        count, seen = int(masked.sum()), int(masked.numel())
        for store in (self.current, self.totals):
            entry = store.setdefault(reason, [0, 0])
            entry[0] += count
            entry[1] += seen
        if count:
            logger.debug("%s: %s masked %d of %d samples in a batch", self.label, reason, count, seen)

    def flush(self, period: str) -> dict[str, tuple[int, int]]:
        """Log and reset the counts since the last flush; returns {reason: (masked, seen)}.
        Fitting checks are logged at INFO even when they masked nothing; other filters
        (a degenerate 2D box) only when they did."""
        report = {reason: (n, seen) for reason, (n, seen) in self.current.items()}
        for reason, (n, seen) in report.items():
            level = logging.INFO if n or reason.startswith("fitting") else logging.DEBUG
            logger.log(level, "%s: %s masked %d of %d samples %s", self.label, reason, n, seen, period)
        self.current = {}
        return report


class BenchmarkDataset(Pose2MeshDataset):
    """Common part of the real-benchmark loaders.

    Subclasses set the class attributes, read their files in ``__init__`` and install the
    per-sample table (a dict of equal-length NumPy arrays) with :meth:`set_table`, and
    implement :meth:`build_targets`.

    Class attributes:
        name: registry name, also the folder under ``DATA_DIR`` (:attr:`folder`) whose
            ``README.md`` (:attr:`readme`) says where the files come from.
        train_only: the dataset has no test split; the 'test' split reads the training
            files (with a warning).
        body_models: accepted ``MODEL.body_model`` values.
        input_sets / target_sets: accepted joint sets.
        synthetic_noise: training inputs get the 1.7 error models when ``use_gt_input`` is
            False (Human36M, COCO, MuCo, AMASS).
        augment: the 1.6 flip/rotation draws apply to the training split.
        detections: when the 2D input is the official detection output: "test" (test split
            with ``use_gt_input`` False), "unless_gt" (both splits with ``use_gt_input`` False),
            "always" or "never".
    """

    train_only = False
    body_models: tuple[str, ...] = ("smpl",)
    input_sets: tuple[str, ...] = ("human36", "coco", "smpl")
    target_sets: tuple[str, ...] = ("human36", "coco", "smpl")
    synthetic_noise = False
    augment = True
    detections = "never"

    @property
    def folder(self) -> str:
        return self.name

    @property
    def readme(self) -> str:
        return f"data/{self.folder}/README.md"

    def __init__(self, cfg, split: str):
        if split not in ("train", "test"):
            raise Pose2MeshError(f"{self.name}: split must be 'train' or 'test', got '{split}'")
        if self.train_only and split != "train":
            logger.warning("%s has no test split: the 'test' split reads the training data", self.name)
        self.split = split
        self.model_name = cfg.MODEL.name
        self.body_model_name = cfg.MODEL.body_model
        if self.body_model_name not in self.body_models:
            raise Pose2MeshError(
                f"{self.name} needs MODEL.body_model {' or '.join(repr(b) for b in self.body_models)}, "
                f"got '{self.body_model_name}'"
            )
        self.joint_set = get_joint_set(cfg.DATASET.input_joint_set)
        self.target_joint_set = get_joint_set(cfg.DATASET.target_joint_set)
        for kind, js, allowed in (
            ("input", self.joint_set, self.input_sets),
            ("target", self.target_joint_set, self.target_sets),
        ):
            if js.name not in allowed:
                raise Pose2MeshError(
                    f"{self.name}: DATASET.{kind}_joint_set must be one of {list(allowed)}, got '{js.name}'"
                )
        self.root_dir = Path(cfg.DATA_DIR) / self.folder
        self.input_hw = (int(cfg.MODEL.input_shape[0]), int(cfg.MODEL.input_shape[1]))
        self.use_gt_input = bool(cfg.DATASET.use_gt_input)
        is_train = split == "train"
        self.flip_enabled = bool(cfg.AUG.flip) and is_train and self.augment
        if self.flip_enabled and self.has_mesh_targets:
            raise Pose2MeshError(
                "AUG.flip is only supported for MODEL.name 'posenet' (mesh targets are not flipped)"
            )
        self.rotate_factor = float(cfg.AUG.rotate_factor) if is_train and self.augment else 0.0
        self.use_detections = {
            "never": False,
            "always": True,
            "test": not is_train and not self.use_gt_input,
            "unless_gt": not self.use_gt_input,
        }[self.detections]
        self.noisy_input = self.synthetic_noise and is_train and not self.use_gt_input and not self.use_detections
        self.debug_max_samples = int(cfg.DATASET.debug_max_samples)
        self.seed = int(cfg.SEED)
        self.epoch = 0
        self.mask_log = MaskLog(f"{self.name} {split}")
        self.skipped: dict[str, int] = {}
        self.table: dict[str, np.ndarray] = {}

    # -------------------------------------------------------------- table and items
    def path(self, *parts: str) -> Path:
        return self.root_dir.joinpath(*parts)

    def load_json(self, *parts: str):
        return load_json(self.path(*parts), self.readme)

    def report_skipped(self, reason: str, count: int, total: int, source: Path | str) -> None:
        """Count and log (INFO) samples dropped while reading the annotations."""
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + count
            logger.info(
                "%s %s: skipped %d of %d samples: %s (%s)", self.name, self.split, count, total, reason, source
            )

    def set_table(self, table: dict[str, np.ndarray]) -> None:
        """Install the per-sample table (truncated by DATASET.debug_max_samples)."""
        lengths = {key: len(value) for key, value in table.items()}
        if len(set(lengths.values())) > 1:
            raise AssertionError(f"{self.name}: table columns differ in length: {lengths}")
        size = next(iter(lengths.values())) if lengths else 0
        if self.debug_max_samples > 0:
            size = min(size, self.debug_max_samples)
        self.table = {key: np.ascontiguousarray(value[:size]) for key, value in table.items()}
        self.table["sample_index"] = np.arange(size, dtype=np.int64)
        if size == 0:
            raise Pose2MeshError(
                f"{self.name} {self.split}: no usable sample under {self.root_dir} (see {self.readme})"
            )
        logger.info("%s %s: %d samples from %s", self.name, self.split, len(self), self.root_dir)

    def __len__(self) -> int:
        return len(self.table["sample_index"])

    def row(self, index: int) -> dict[str, np.ndarray]:
        """The table row of sample ``index`` (AMASS expands rows over its cameras)."""
        return {key: values[index] for key, values in self.table.items()}

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        item = self.row(index)
        flip, rot = 0.0, 0.0
        if self.flip_enabled or self.rotate_factor > 0:
            rng = sample_rng(self.seed, self.epoch, int(index), _AUG_DOMAIN)
            flip, rot = draw_augmentation(rng, self.flip_enabled, self.rotate_factor)
        item["flip"] = np.float32(flip)
        item["rot_deg"] = np.float32(rot)
        return item

    def set_epoch(self, epoch: int) -> None:
        """Reseed the augmentation draws; counts still pending from the previous epoch are
        logged first (when the engine did not call :meth:`end_epoch`)."""
        if self.split == "train":
            if self.mask_log.current:
                self.mask_log.flush(f"in epoch {self.epoch}")
            self.epoch = epoch

    def end_epoch(self, epoch: int) -> dict[str, tuple[int, int]]:
        """Log (INFO) how many samples each filter masked during training epoch ``epoch``."""
        return self.mask_log.flush(f"in epoch {epoch}")

    def summarize(self, per_sample: dict[str, np.ndarray]) -> dict[str, float]:
        self.mask_log.flush("in this evaluation")
        return super().summarize(per_sample)

    # -------------------------------------------------------------- batch building
    def build_targets(self, batch: dict[str, torch.Tensor], body_model) -> dict[str, torch.Tensor]:
        """Geometry of a batch, all float32 on the batch's device.

        Returns a dict with ``input_cam_mm`` (B, J, 3) camera-frame input joints;
        ``input_px`` (B, J, 2) their ground-truth 2D (or ``det_px`` when the input is a
        detection); ``reg_cam_mm`` (B, Jt, 3); for mesh models ``mesh_cam_mm`` (B, V, 3) and
        ``mesh_root_mm`` (B, 3); optional (B,) bool masks ``lift_ok``, ``reg_ok``, ``mesh_ok``;
        and ``extra``: a dict of further tensors for :meth:`evaluate_batch`.
        """
        raise NotImplementedError

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, torch.Tensor], body_model) -> dict[str, torch.Tensor]:
        targets = self.build_targets(batch, body_model)
        return self.finish(batch, targets)

    def input_from_mesh(self, body_model, vertices_mm: torch.Tensor) -> torch.Tensor:
        """Input-set joints regressed from a camera-frame mesh (mm)."""
        return body_model.regress_joints(vertices_mm, self.joint_set.name)

    def pinhole_mesh_targets(self, batch, body_model, mesh_mm: torch.Tensor, input_cam_mm: torch.Tensor,
                             focal_px, princpt_px) -> dict:
        """:meth:`build_targets` of a camera-frame mesh seen by a pinhole camera.

        Args:
            mesh_mm: (B, V, 3) camera-frame mesh; input_cam_mm: (B, J, 3) input joints.
            focal_px, princpt_px: (B, 2) tensors or (2,) constants.
        Returns:
            input joints and their projection, target joints regressed from the mesh, the
            mesh and its root (the target root joint), and ``det_px`` when detections are
            the input.
        """
        reg_cam = body_model.regress_joints(mesh_mm, self.target_joint_set.name)
        targets = {
            "input_cam_mm": input_cam_mm,
            "input_px": project_perspective(input_cam_mm, focal_px, princpt_px),
            "reg_cam_mm": reg_cam,
            "mesh_cam_mm": mesh_mm,
            "mesh_root_mm": reg_cam[:, self.target_joint_set.root],
        }
        if self.use_detections:
            targets["det_px"] = batch["det_px"].float()
        return targets

    def detections_by_image_id(self, name: str, num_joints: int) -> np.ndarray:
        """(N, num_joints, 2) keypoints of ``data/<name>`` (a list of ``{image_id,
        keypoints}``), in the order of ``self.image_ids``. Raises Pose2MeshError naming the
        file for a missing image or malformed keypoints."""
        path = self.path("data", name)
        entries = self.load_json("data", name)
        with parsing(path, "detection"):
            by_image = {entry["image_id"]: entry["keypoints"] for entry in entries}
        missing = [i for i in self.image_ids if i not in by_image]
        if missing:
            raise Pose2MeshError(
                f"malformed {path}: no detection for image_id {missing[0]} ({len(missing)} missing)"
            )
        return np.stack([as_array(by_image[i], (num_joints, 2), path, f"keypoints of image {i}")
                         for i in self.image_ids])

    def finish(self, batch: dict[str, torch.Tensor], targets: dict) -> dict[str, torch.Tensor]:
        """The 2D pipeline, augmentation, noise and root handling of every loader."""
        out_h, out_w = self.input_hw
        uv = targets["det_px"] if self.use_detections else targets["input_px"]
        uv = uv.float()
        size = len(uv)
        rot = batch["rot_deg"].to(uv)
        flip = batch["flip"] > 0.5
        tight = tight_bbox(uv)
        bbox, box_ok = process_bbox_batch(tight, out_w / out_h)
        crop = crop_points(uv, bbox, rot, out_w, out_h)
        if self.noisy_input:
            crop = self.add_input_noise(crop, tight, bbox, rot)
        if self.flip_enabled:
            crop = flip_crop_points(crop, flip, self.joint_set.flip_permutation(), out_w)
        pose2d = crop_to_pose2d(crop, out_w, out_h)

        input_cam = targets["input_cam_mm"].float()
        lift = rotate_flip_3d(
            root_relative(input_cam, input_cam[:, self.joint_set.root]),
            rot,
            flip if self.flip_enabled else None,
            self.joint_set.flip_permutation(),
        )
        reg_cam = targets["reg_cam_mm"].float()
        reg = rotate_flip_3d(
            root_relative(reg_cam, reg_cam[:, self.target_joint_set.root]),
            rot,
            flip if self.flip_enabled else None,
            self.target_joint_set.flip_permutation(),
        )

        self.mask_log.record("degenerate 2D box", ~box_ok)
        ones = torch.ones(size, dtype=torch.bool, device=uv.device)
        masks = {key: targets.get(f"{key}_ok", ones) & box_ok for key in ("lift", "reg", "mesh")}
        out = {
            "pose2d": pose2d,
            "lift_pose3d_mm": lift,
            "lift_pose3d_valid": masks["lift"].float()[:, None, None].expand(-1, lift.shape[1], 1).contiguous(),
            "reg_pose3d_mm": reg,
            "reg_pose3d_valid": masks["reg"].float()[:, None, None].expand(-1, reg.shape[1], 1).contiguous(),
        }
        if self.has_mesh_targets:
            mesh = root_relative(targets["mesh_cam_mm"].float(), targets["mesh_root_mm"].float())
            out["mesh_m"] = rotate_z(mesh, rot) / 1000.0
            out["mesh_valid"] = masks["mesh"].float()[:, None, None]
        out.update(targets.get("extra", {}))
        return out

    def add_input_noise(
        self, crop_px: torch.Tensor, tight: torch.Tensor, bbox: torch.Tensor, rot: torch.Tensor
    ) -> torch.Tensor:
        """Training-time 2D errors in crop pixels (1.7): Gaussian offsets for human36 input,
        ``synthesize_coco_pose`` for coco input (Pelvis/Neck recomputed, fix 10.8)."""
        out_h, out_w = self.input_hw
        if self.joint_set.name == "human36":
            return crop_px + h36m_gaussian_offsets_px(len(crop_px), out_w, out_h, device=crop_px.device)
        if self.joint_set.name == "coco":
            area = map_box_corners_area(tight, bbox, rot, out_w, out_h)
            valid = torch.ones(crop_px.shape[:1] + (17,), dtype=torch.bool, device=crop_px.device)
            noisy17, _ = synthesize_coco_pose(crop_px[:, :17], valid, area)
            pelvis = 0.5 * (noisy17[:, 11] + noisy17[:, 12])
            neck = 0.5 * (noisy17[:, 5] + noisy17[:, 6])
            return torch.cat([noisy17, pelvis[:, None], neck[:, None]], dim=1)
        return crop_px
