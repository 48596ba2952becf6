"""AMASS motion capture seen by four virtual cameras (training only; DATA_FORMATS section 6).

Files: ``DATA_DIR/AMASS/data/<SubDataset>/<sequence>/*_poses.npz`` (see data/AMASS/README.md)
with ``poses`` (F, 156) SMPL-H axis-angle and ``betas`` (16,). Pose2Mesh uses the
sub-datasets whose folder name contains "CMU"; PoseNet also those containing "BML". Frames
are subsampled by the folder name (cmu 60, mpi_mosh / bmlrub / bmlmovi 10, others 5). Debug
mode (``DATASET.debug_max_samples`` > 0) reads, as the original's, every trial of the first
sequence folder of each sub-dataset, before the usual truncation.

Every kept frame is seen by four fixed H36M-like cameras (rotations below, ``t = (0, 0, 10)``
m, focal 1500 px, principal point (500, 500)). ``prepare_batch`` composes the root rotation
with the camera, runs the neutral layer without translation and adds ``t`` (the original's
recipe, 1.4 steps 1-2); no shape clamp, no fitting check, all targets valid.

Differences from the original (bug 10.16): SMPL-H ``poses[:, 66:72]`` are left-hand finger
rotations, not SMPL's hand joints, so SMPL joints 22-23 (L_Hand, R_Hand) get zero rotation;
frames are stored once and expanded over the cameras by index (not 4 copies in memory).
Shared differences (:mod:`pose2mesh.datasets.benchmark`): recomputed noisy Pelvis and Neck
with coco input (10.8), the mesh rotated with a rotation augmentation and no flip for mesh
models (10.6), a degenerate 2D box masked instead of crashing (10.15), per-sample seeded draws
(10.20).
"""

from __future__ import annotations

import numpy as np
import torch

from pose2mesh.datasets.benchmark import BenchmarkDataset
from pose2mesh.datasets.registry import register_dataset
from pose2mesh.datasets.smpl_targets import world_to_camera_mesh
from pose2mesh.errors import Pose2MeshError


CAMERA_ROTATIONS = (
    (
        (-0.9153617, 0.40180838, 0.02574755),
        (0.05154812, 0.18037356, -0.9822465),
        (-0.39931902, -0.89778364, -0.18581952),
    ),
    (
        (0.92816836, 0.37215385, 0.00224838),
        (0.08166409, -0.1977723, -0.9768404),
        (-0.36309022, 0.9068559, -0.2139576),
    ),
    (
        (-0.91415495, -0.40277803, -0.04572295),
        (-0.04562341, 0.2143085, -0.97569996),
        (0.4027893, -0.8898549, -0.21428728),
    ),
    (
        (0.91415626, -0.40060705, 0.06190599),
        (-0.05641001, -0.2769532, -0.9592262),
        (0.40141782, 0.8733905, -0.27577674),
    ),
)
CAMERA_T_M = (0.0, 0.0, 10.0)
FOCAL_PX = (1500.0, 1500.0)
PRINCPT_PX = (500.0, 500.0)
NUM_CAMERAS = len(CAMERA_ROTATIONS)
SMPL_BODY_POSE_DIMS = 66  # 22 joints of SMPL-H's body; SMPL's hands (22, 23) stay at zero


def subsample_ratio(folder: str) -> int:
    """Frame step of a sub-dataset, by its lower-cased folder name."""
    return {"cmu": 60, "mpi_mosh": 10, "bmlrub": 10, "bmlmovi": 10}.get(folder.lower(), 5)


class AMASS(BenchmarkDataset):
    name = "AMASS"
    synthetic_noise = True
    train_only = True

    def __init__(self, cfg, split: str):
        super().__init__(cfg, split)
        root = self.path("data")
        if not root.is_dir():
            raise Pose2MeshError(f"missing dataset folder {root} (see {self.readme} for where it comes from)")
        keys = ("CMU", "BML") if self.model_name == "posenet" else ("CMU",)
        subsets = sorted(p for p in root.iterdir() if p.is_dir() and any(k in p.name for k in keys))
        poses, shapes = [], []
        for subset in subsets:
            files = sorted(subset.glob("*/*_poses.npz"))
            if self.debug_max_samples > 0 and files:
                files = [f for f in files if f.parent == files[0].parent]  # one sequence folder, every trial
            step = subsample_ratio(subset.name)
            for path in files:
                pose, beta = _read_sequence(path)
                kept = pose[::step]
                poses.append(kept)
                shapes.append(np.broadcast_to(beta, (len(kept), 10)))
        if not poses:
            raise Pose2MeshError(
                f"no AMASS sequence (*_poses.npz) in a sub-dataset folder named like {list(keys)} under {root} "
                f"(see {self.readme})"
            )
        self.set_table({"pose_aa": np.concatenate(poses), "shape": np.ascontiguousarray(np.concatenate(shapes))})

    def __len__(self) -> int:
        return NUM_CAMERAS * len(self.table["pose_aa"])

    def row(self, index: int) -> dict[str, np.ndarray]:
        frame, camera = divmod(int(index), NUM_CAMERAS)
        return {
            "pose_aa": self.table["pose_aa"][frame],
            "shape": self.table["shape"][frame],
            "camera": np.int64(camera),
            "sample_index": np.int64(index),
        }

    def build_targets(self, batch, body_model):
        device = batch["pose_aa"].device
        rotation = torch.tensor(CAMERA_ROTATIONS, dtype=torch.float32, device=device)[batch["camera"]]
        translation = torch.tensor(CAMERA_T_M, device=device).expand(len(rotation), 3)
        vertices_m, _ = world_to_camera_mesh(
            body_model, batch["pose_aa"], batch["shape"].float(), rotation, translation, compensate=False
        )
        mesh_mm = vertices_m * 1000.0
        return self.pinhole_mesh_targets(batch, body_model, mesh_mm, self.input_from_mesh(body_model, mesh_mm),
                                         FOCAL_PX, PRINCPT_PX)


def _read_sequence(path) -> tuple[np.ndarray, np.ndarray]:
    """(F, 24, 3) SMPL poses (hands zeroed) and (10,) betas of one AMASS ``*_poses.npz``."""
    try:
        with np.load(path) as content:
            poses, betas = content["poses"], content["betas"]
    except KeyError as err:
        raise Pose2MeshError(f"malformed {path}: missing key {err}") from None
    except (OSError, ValueError) as err:
        raise Pose2MeshError(f"cannot read {path}: {err}") from None
    if poses.ndim != 2 or poses.shape[1] < SMPL_BODY_POSE_DIMS or betas.shape[-1] < 10:
        raise Pose2MeshError(
            f"malformed {path}: 'poses' {poses.shape} / 'betas' {betas.shape}, expected (F, 156) / (16,)"
        )
    smpl = np.zeros((len(poses), 24, 3), dtype=np.float32)
    smpl[:, :22] = poses[:, :SMPL_BODY_POSE_DIMS].reshape(-1, 22, 3)
    return smpl, betas.reshape(-1)[:10].astype(np.float32)


@register_dataset("AMASS")
def build_amass(cfg, split, body_model):
    return AMASS(cfg, split)
