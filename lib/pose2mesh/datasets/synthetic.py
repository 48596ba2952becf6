"""The embedded synthetic dataset: anny bodies (or right hands) seen by virtual cameras.

Each sample is a set of *parameters*: a body pose, a phenotype and a virtual camera. Training
body poses come from ``SYNTHETIC.pose_source``: ``prior`` (the pose prior's key poses and joint
limits), ``mocap`` (frames of the retargeted CMU motion-capture library, training subjects
only) or ``mix`` (each pose from mocap with probability ``SYNTHETIC.mocap_ratio``, else from
the prior, which keeps the lying and kneeling poses mocap lacks); every pose is mirrored
left/right with probability 0.5. Hands always use the hand prior. ``__getitem__`` only reads a row of a pre-sampled table; meshes, joints,
projections and normalisation are computed for a whole batch on the training device in
:meth:`Synthetic.prepare_batch`.

Splits: the training stream draws a fresh table every epoch from (``SEED``, epoch). The test
split is one fixed table drawn from ``SYNTHETIC.test_seed``: ``SYNTHETIC.test_split``
``synthetic`` draws its poses from the prior (``test_size`` samples), ``real_motion`` takes
every frame of the held-out mocap subject (006) once, unmirrored, each with its own drawn
phenotype and camera. The two streams use separate seed domains, and the real-motion subject
never trains, so the splits never share a sample.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from pose2mesh.assets import POSE_LIBRARY_PATH
from pose2mesh.camera import project_perspective, standardize_pose2d
from pose2mesh.datasets.base import Pose2MeshDataset, root_relative
from pose2mesh.datasets.noise import detector_noise_px
from pose2mesh.datasets.pose_prior import BodyPosePrior, HandPosePrior, sample_phenotypes
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import get_joint_set
from pose2mesh.mocap.library import load_pose_library
from pose2mesh.rotations import compose_root_rotation

_TRAIN_DOMAIN, _TEST_DOMAIN = 0, 1
_HAND_DISTANCE_SCALE = 0.1
_SAMPLING_CHUNK = 4096


def stream_seed(domain: int, seed: int, epoch: int = 0) -> int:
    """A 63-bit seed for one sampling stream, independent across (domain, seed, epoch)."""
    state = np.random.SeedSequence([domain, seed, epoch]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def look_at_rotation(
    azimuth_rad: torch.Tensor, elevation_rad: torch.Tensor, roll_rad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-to-camera rotations of cameras looking at the origin of a z-up world.

    Args:
        azimuth_rad, elevation_rad, roll_rad: (B,) camera direction angles and the roll
            about the optical axis.
    Returns:
        rotation (B, 3, 3) with rows (right, down, forward) in OpenCV convention, and
        direction (B, 3) the unit vector from the target to the camera centre.
    """
    cos_el = torch.cos(elevation_rad)
    direction = torch.stack(
        [cos_el * torch.cos(azimuth_rad), cos_el * torch.sin(azimuth_rad), torch.sin(elevation_rad)],
        dim=-1,
    )
    forward = -direction
    up = torch.zeros_like(forward)
    up[:, 2] = 1.0
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=-1)
    down = torch.linalg.cross(forward, right)
    cos_r, sin_r = torch.cos(roll_rad)[:, None], torch.sin(roll_rad)[:, None]
    rolled_right = cos_r * right + sin_r * down
    rolled_down = -sin_r * right + cos_r * down
    return torch.stack([rolled_right, rolled_down, forward], dim=1), direction


class Synthetic(Pose2MeshDataset):
    """Synthetic anny dataset for ``MODEL.body_model`` ``anny`` (body) or ``anny_hand``.

    Args:
        cfg: the experiment config (DATASET, SYNTHETIC, MODEL, AUG, SEED are read).
        split: ``"train"`` or ``"test"``.
        bone_labels: the body model's bone labels (the pose prior addresses bones by name).
    """

    name = "Synthetic"

    def __init__(self, cfg, split: str, bone_labels: list[str]):
        if split not in ("train", "test"):
            raise Pose2MeshError(f"Synthetic: split must be 'train' or 'test', got '{split}'")
        body_model_name = cfg.MODEL.body_model
        if body_model_name not in ("anny", "anny_hand"):
            raise Pose2MeshError(
                f"Synthetic data needs MODEL.body_model 'anny' or 'anny_hand', got '{body_model_name}'"
            )
        self.split = split
        self.body_model_name = body_model_name
        self.model_name = cfg.MODEL.name
        self.joint_set = get_joint_set(cfg.DATASET.input_joint_set)
        self.target_joint_set = get_joint_set(cfg.DATASET.target_joint_set)
        self.is_hand = body_model_name == "anny_hand"
        if self.is_hand != (self.joint_set.name == "mano"):
            raise Pose2MeshError(
                f"Synthetic: joint set '{self.joint_set.name}' does not fit body model '{body_model_name}' "
                "(use 'mano' with 'anny_hand', human36/coco/smpl with 'anny')"
            )
        self.flip = bool(cfg.AUG.flip) and split == "train"
        if self.flip and self.has_mesh_targets:
            raise Pose2MeshError("AUG.flip is only supported for MODEL.name 'posenet' (mesh targets are not flipped)")
        syn = cfg.SYNTHETIC
        self.size = int(syn.train_size if split == "train" else syn.test_size)
        if cfg.DATASET.debug_max_samples > 0:
            self.size = min(self.size, int(cfg.DATASET.debug_max_samples))
        self.noisy_input = not cfg.DATASET.use_gt_input and syn.noise_2d != "none"
        self._syn = syn
        self._seed = int(cfg.SEED)
        self._test_seed = int(syn.test_seed)
        self.prior = HandPosePrior(bone_labels) if self.is_hand else BodyPosePrior(bone_labels)
        self.pose_source, self.mocap_poses = self._pose_source(syn, split, bone_labels)
        if self.mocap_poses is not None and split == "test":
            self.size = len(self.mocap_poses)
            if cfg.DATASET.debug_max_samples > 0:
                self.size = min(self.size, int(cfg.DATASET.debug_max_samples))
        self._table = self._sample_table(epoch=0)

    def _pose_source(self, syn, split: str, bone_labels: list[str]
                     ) -> tuple[str, torch.Tensor | None]:
        """(source name, (N, NB, 3) mocap poses of this split or None); the config loader has
        checked the names and the ratio."""
        if split == "train":
            source = syn.pose_source
        else:
            source = "mocap" if syn.test_split == "real_motion" else "prior"
        if self.is_hand and split == "test" and source == "mocap":
            raise Pose2MeshError("SYNTHETIC.test_split 'real_motion' is for bodies; hands have no mocap")
        if self.is_hand or source == "prior":
            return "prior", None
        library = load_pose_library(syn.mocap_path or POSE_LIBRARY_PATH).split(split)
        if len(library) == 0:
            raise Pose2MeshError(f"the mocap pose library has no {split} frames")
        return source, library.full_poses(bone_labels)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {key: values[index] for key, values in self._table.items()}

    def set_epoch(self, epoch: int) -> None:
        if self.split == "train":
            self._table = self._sample_table(epoch)

    def _sample_table(self, epoch: int) -> dict[str, np.ndarray]:
        if self.split == "train":
            seed = stream_seed(_TRAIN_DOMAIN, self._seed, epoch)
        else:
            seed = stream_seed(_TEST_DOMAIN, self._test_seed)
        generator = torch.Generator().manual_seed(seed)
        chunks = [
            self._sample_chunk(start, min(_SAMPLING_CHUNK, self.size - start), generator)
            for start in range(0, self.size, _SAMPLING_CHUNK)
        ]
        return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}

    def _sample_chunk(self, start: int, n: int, generator: torch.Generator
                      ) -> dict[str, np.ndarray]:
        """Rows ``start .. start + n`` of the table."""
        syn = self._syn

        def uniform(low_high, size=(n,)) -> torch.Tensor:
            low, high = float(low_high[0]), float(low_high[1])
            return low + (high - low) * torch.rand(size, generator=generator)

        pose_aa = self._sample_poses(start, n, generator)
        phenotype = sample_phenotypes(n, generator=generator, all_ages=syn.all_ages)
        distance_scale = _HAND_DISTANCE_SCALE if self.is_hand else 1.0
        elevation = (-60.0, 75.0) if self.is_hand else syn.elevation_deg
        focal = uniform(syn.focal_px)
        width, height = (float(s) for s in syn.image_size)
        principal = torch.stack(
            [width / 2 + 0.02 * width * (torch.rand(n, generator=generator) - 0.5),
             height / 2 + 0.02 * height * (torch.rand(n, generator=generator) - 0.5)],
            dim=-1,
        )
        distance = uniform(syn.distance_m) * distance_scale
        table = {
            "pose_aa": pose_aa,
            "phenotype": phenotype,
            "cam_azimuth_rad": uniform((0.0, 2 * math.pi)),
            "cam_elevation_rad": torch.deg2rad(uniform(elevation)),
            "cam_roll_rad": torch.deg2rad(uniform(syn.roll_deg)),
            "cam_distance_m": distance,
            "focal_px": focal,
            "princpt_px": principal,
            "flip": (torch.rand(n, generator=generator) < 0.5).float() * float(self.flip),
        }
        if self.noisy_input:
            body_height_px = focal * (0.2 if self.is_hand else 1.7) * distance_scale / distance
            table["noise_px"] = detector_noise_px(
                n,
                self.joint_set.num_joints,
                std_px=syn.noise_2d_std_px,
                outlier_prob=syn.noise_2d_outlier_prob,
                outlier_radius_px=0.15 * body_height_px,
                generator=generator,
            )
        return {key: value.numpy().astype(np.float32) for key, value in table.items()}

    def _sample_poses(self, start: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, NB, 3) body poses of table rows ``start ..`` from this split's source (module
        docstring)."""
        syn = self._syn
        prior = self.prior.sample(
            n, generator=generator, key_pose_prob=syn.key_pose_prob, noise_deg=syn.pose_noise_deg
        )
        if self.mocap_poses is None:
            return prior
        if self.split == "test":  # every held-out frame once, in order, unmirrored
            return self.mocap_poses[start:start + n].clone()
        rows = torch.randint(len(self.mocap_poses), (n,), generator=generator)
        mirror = (torch.rand(n, generator=generator) < 0.5)[:, None, None]
        mocap = self.mocap_poses[rows]
        mocap = torch.where(mirror, self.prior.mirror(mocap), mocap)
        if self.pose_source == "mocap":
            return mocap
        use_mocap = (torch.rand(n, generator=generator) < float(syn.mocap_ratio))[:, None, None]
        return torch.where(use_mocap, mocap, prior)

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, torch.Tensor], body_model) -> dict[str, torch.Tensor]:
        """Body-model forward, virtual camera, projection and normalisation for a batch.

        The camera (world-to-camera rotation R, centre ``c = root + d * direction``, looking
        at the target root joint) is applied by posing the body with its root orientation
        turned by R (``compose_root_rotation``: a world-axes rotation about the root bone's
        head) instead of moving the vertices afterwards. Every posed point p' is then
        ``R (p - h) + h`` for the fixed head h, and the regressors' rows sum to one, so
        ``R (p - c) = (p' - root') + (0, 0, d)``: camera coordinates need one subtraction, and
        the mesh needs no rotation pass of its own.
        """
        rotation, _ = look_at_rotation(
            batch["cam_azimuth_rad"], batch["cam_elevation_rad"], batch["cam_roll_rad"]
        )
        turned_pose_aa = compose_root_rotation(batch["pose_aa"], rotation)
        vertices_m = body_model(pose_aa=turned_pose_aa, phenotype=batch["phenotype"]).vertices_m
        input_joints_m = body_model.regress_joints(vertices_m, self.joint_set.name)
        target_joints_m = (
            input_joints_m if self.target_joint_set.name == self.joint_set.name
            else body_model.regress_joints(vertices_m, self.target_joint_set.name)
        )
        target_root_m = target_joints_m[:, self.target_joint_set.root]
        camera_offset_m = torch.zeros_like(target_root_m)
        camera_offset_m[:, 2] = batch["cam_distance_m"]

        input_cam_m = root_relative(input_joints_m, target_root_m - camera_offset_m)
        focal_px = batch["focal_px"][:, None].expand(-1, 2)
        uv_px = project_perspective(input_cam_m, focal_px, batch["princpt_px"])
        if "noise_px" in batch:
            uv_px = uv_px + batch["noise_px"]
        pose2d = standardize_pose2d(uv_px)
        lift_mm = root_relative(input_joints_m, input_joints_m[:, self.joint_set.root]) * 1000.0
        if self.flip:
            pose2d, lift_mm = self._flip(pose2d, lift_mm, batch["flip"] > 0.5)

        target_mm = root_relative(target_joints_m, target_root_m) * 1000.0
        out = {
            "pose2d": pose2d,
            "lift_pose3d_mm": lift_mm,
            "lift_pose3d_valid": torch.ones_like(lift_mm[..., :1]),
            "reg_pose3d_mm": target_mm,
            "reg_pose3d_valid": torch.ones_like(target_mm[..., :1]),
        }
        if self.has_mesh_targets:
            out["mesh_m"] = vertices_m.sub_(target_root_m[:, None])  # in place: no new buffer
            out["mesh_valid"] = torch.ones_like(vertices_m[:, :1, :1])
        return out

    def _flip(
        self, pose2d: torch.Tensor, lift_mm: torch.Tensor, flip: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Horizontal flip of the selected samples: mirror x and swap left/right rows.

        Mirroring x in pixels and then standardizing equals negating the standardized x.
        """
        order = torch.as_tensor(self.joint_set.flip_permutation(), device=pose2d.device)
        sign = torch.tensor([-1.0, 1.0], device=pose2d.device)
        flipped_2d = pose2d[:, order] * sign
        flipped_3d = lift_mm[:, order] * torch.tensor([-1.0, 1.0, 1.0], device=lift_mm.device)
        mask = flip[:, None, None]
        return torch.where(mask, flipped_2d, pose2d), torch.where(mask, flipped_3d, lift_mm)
