"""The retargeted motion-capture pose library (``asset/mocap/cmu_anny_poses.npz``, installed
as package data: :data:`pose2mesh.assets.POSE_LIBRARY_PATH`).

``tools/mocap_to_anny.py`` writes it from BVH takes; :func:`load_pose_library` reads it. Keys:

- ``pose_aa`` (N, K, 3) float16: anny body ``pose_aa`` (radians) of the K bones that move,
- ``bone_labels`` (K,) str: their anny bone names (every other bone is zero),
- ``take_index`` (N,) int32: the take of each frame; ``frame_index`` (N,) int32: its BVH frame,
- ``take_names`` (T,) str, ``take_subjects`` (T,) str: each take's name and subject,
- ``fps`` (): the frame rate the takes were sub-sampled to.

Split by subject: :data:`TEST_SUBJECTS` (CMU subject 006, basketball) is the real-motion
test split and never trains; every other subject trains.
"""
from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pose2mesh.assets import POSE_LIBRARY_PATH
from pose2mesh.errors import Pose2MeshError

TEST_SUBJECTS: tuple[str, ...] = ("006",)
CMU_CREDIT = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. "
    "The database was created with funding from NSF EIA-0196217."
)
_KEYS = ("pose_aa", "bone_labels", "take_index", "frame_index", "take_names", "take_subjects", "fps")


@dataclasses.dataclass(frozen=True)
class PoseLibrary:
    """Retargeted mocap frames (see the module docstring for the fields)."""

    pose_aa: np.ndarray
    bone_labels: tuple[str, ...]
    take_index: np.ndarray
    frame_index: np.ndarray
    take_names: tuple[str, ...]
    take_subjects: tuple[str, ...]
    fps: float

    def __len__(self) -> int:
        return int(self.pose_aa.shape[0])

    def split(self, split: str) -> "PoseLibrary":
        """The ``"train"`` frames (subjects not in TEST_SUBJECTS) or the ``"test"`` frames."""
        if split not in ("train", "test"):
            raise Pose2MeshError(f"pose library: split must be 'train' or 'test', got '{split}'")
        is_test_take = np.array([s in TEST_SUBJECTS for s in self.take_subjects])
        keep = is_test_take[self.take_index] == (split == "test")
        return dataclasses.replace(
            self, pose_aa=self.pose_aa[keep], take_index=self.take_index[keep],
            frame_index=self.frame_index[keep],
        )

    def full_poses(self, rig_bone_labels: Sequence[str], rows: np.ndarray | None = None
                   ) -> torch.Tensor:
        """(N', NB, 3) float32 ``pose_aa`` in the rig's bone order (zeros for bones the library
        does not move), for ``rows`` (all frames when None)."""
        index = {label: i for i, label in enumerate(rig_bone_labels)}
        missing = [label for label in self.bone_labels if label not in index]
        if missing:
            raise Pose2MeshError(f"pose library: the body rig has no bones {missing}")
        selected = self.pose_aa if rows is None else self.pose_aa[rows]
        poses = torch.zeros(selected.shape[0], len(rig_bone_labels), 3)
        columns = torch.tensor([index[label] for label in self.bone_labels], dtype=torch.long)
        poses[:, columns] = torch.from_numpy(selected.astype(np.float32))
        return poses

    def frames_per_subject(self) -> dict[str, int]:
        counts = np.bincount(self.take_index, minlength=len(self.take_names))
        per_subject: dict[str, int] = {}
        for subject, count in zip(self.take_subjects, counts):
            if count == 0:
                continue
            per_subject[subject] = per_subject.get(subject, 0) + int(count)
        return per_subject


def save_pose_library(path: str | Path, library: PoseLibrary) -> None:
    """Write ``library`` as a compressed npz (poses in float16)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez_compressed(
            handle,
            pose_aa=library.pose_aa.astype(np.float16),
            bone_labels=np.array(library.bone_labels),
            take_index=library.take_index.astype(np.int32),
            frame_index=library.frame_index.astype(np.int32),
            take_names=np.array(library.take_names),
            take_subjects=np.array(library.take_subjects),
            fps=np.float64(library.fps),
        )


def load_pose_library(path: str | Path = POSE_LIBRARY_PATH) -> PoseLibrary:
    """Read a pose library written by :func:`save_pose_library`; a missing or malformed file
    gives one line naming it and the command that regenerates it."""
    path = Path(path)
    regenerate = "regenerate it with: python tools/mocap_to_anny.py <BVH folder> --out " + str(path)
    if not path.is_file():
        raise Pose2MeshError(f"mocap pose library {path} is missing; {regenerate}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in _KEYS if key not in data.files]
            if missing:
                raise Pose2MeshError(f"mocap pose library {path} lacks {missing}; {regenerate}")
            fields = {key: data[key] for key in _KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise Pose2MeshError(f"mocap pose library {path} is not readable ({err}); {regenerate}") from None
    library = PoseLibrary(
        pose_aa=fields["pose_aa"],
        bone_labels=tuple(str(s) for s in fields["bone_labels"]),
        take_index=fields["take_index"].astype(np.int64),
        frame_index=fields["frame_index"].astype(np.int64),
        take_names=tuple(str(s) for s in fields["take_names"]),
        take_subjects=tuple(str(s) for s in fields["take_subjects"]),
        fps=float(fields["fps"]),
    )
    num_frames = library.pose_aa.shape[0]
    if (library.pose_aa.ndim != 3 or library.pose_aa.shape[1:] != (len(library.bone_labels), 3)
            or library.take_index.shape != (num_frames,) or num_frames == 0
            or library.take_index.max() >= len(library.take_names)
            or len(library.take_subjects) != len(library.take_names)
            or not np.isfinite(library.pose_aa).all()):
        raise Pose2MeshError(f"mocap pose library {path} has inconsistent arrays; {regenerate}")
    return library
