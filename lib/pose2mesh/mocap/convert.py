"""BVH takes -> a :class:`~pose2mesh.mocap.library.PoseLibrary` of anny body poses.

The skeleton's T-pose comes from ``tpose`` (a BVH file whose frame 0 is the T-pose) or, by
default, from the first take whose frame 0 is a T-pose (the converted CMU takes on the
CC_Base rig prepend one to some takes); CMU's own skeleton rests in a T-pose, so for it the
all-zero-rotation pose is the reference. A take's T-pose frame 0 is not motion and is
dropped. Takes are sub-sampled to ``fps``. A take that fails is reported with its reason and
counted, never silently skipped.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pose2mesh.errors import Pose2MeshError
from pose2mesh.mocap.bvh import BvhMotion, read_bvh
from pose2mesh.mocap.library import PoseLibrary
from pose2mesh.mocap.retarget import AnnyRig, Retargeter, SkeletonReference, check_skeleton

_POSE_EPS_RAD = 1e-6


@dataclasses.dataclass
class ConversionReport:
    """What :func:`convert_takes` did: converted takes with their frame counts, and failed
    takes with one-line reasons."""

    converted: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def subject_of(path: Path) -> str:
    """CMU subject of a take: the part of ``006_01.bvh`` before the underscore, else the
    name of the folder it is in."""
    match = re.fullmatch(r"(\d+)_.*", path.stem)
    return match.group(1) if match else path.parent.name


def is_cc_base(motion: BvhMotion) -> bool:
    return any(name.startswith("CC_Base_") for name in motion.joint_names)


def convert_takes(paths: Sequence[str | Path], rig: AnnyRig, fps: float = 20.0,
                  tpose: str | Path | None = None) -> tuple[PoseLibrary, ConversionReport]:
    """Convert BVH takes into anny body poses sub-sampled to ``fps``.

    Raises Pose2MeshError when no take converts or no T-pose reference is found.
    """
    report = ConversionReport()
    motions: list[BvhMotion] = []
    for path in paths:
        try:
            motion = read_bvh(path)
            check_skeleton(motion)
            motions.append(motion)
        except Pose2MeshError as err:
            report.failed.append((str(path), str(err)))
    reference_cc = _cc_reference(motions, tpose)
    retargeters: dict[bool, Retargeter] = {}
    poses, take_index, frame_index, names, subjects = [], [], [], [], []
    for motion in motions:
        cc = is_cc_base(motion)
        try:
            if cc and reference_cc is None:
                raise Pose2MeshError(
                    f"{motion.path}: no T-pose for the CC_Base skeleton (no take starts with "
                    "one); pass --tpose FILE with a T-pose at frame 0"
                )
            if cc not in retargeters:
                reference = reference_cc if cc else SkeletonReference.from_frame(motion, None)
                retargeters[cc] = Retargeter(rig, reference)
            first = 1 if SkeletonReference.from_frame(motion, 0).is_t_pose() else 0
            step = max(1, round(1.0 / (motion.frame_time_s * fps)))
            frames = np.arange(first, motion.num_frames, step)
            if len(frames) == 0:
                raise Pose2MeshError(f"{motion.path}: no motion frames after the T-pose frame")
            take_poses = retargeters[cc](motion, frames)
        except Pose2MeshError as err:
            report.failed.append((motion.path, str(err)))
            continue
        poses.append(take_poses)
        take_index.append(np.full(len(frames), len(names)))
        frame_index.append(frames)
        names.append(Path(motion.path).stem)
        subjects.append(subject_of(Path(motion.path)))
        report.converted.append((motion.path, len(frames)))
    if not poses:
        raise Pose2MeshError(f"no BVH take converted ({len(report.failed)} failed)")
    all_poses = np.concatenate(poses)
    moving = np.abs(all_poses).max(axis=(0, 2)) > _POSE_EPS_RAD
    library = PoseLibrary(
        pose_aa=all_poses[:, moving],
        bone_labels=tuple(label for label, keep in zip(rig.bone_labels, moving) if keep),
        take_index=np.concatenate(take_index),
        frame_index=np.concatenate(frame_index),
        take_names=tuple(names),
        take_subjects=tuple(subjects),
        fps=float(fps),
    )
    return library, report


def _cc_reference(motions: Sequence[BvhMotion], tpose: str | Path | None
                  ) -> SkeletonReference | None:
    if tpose is not None:
        motion = read_bvh(tpose)
        check_skeleton(motion)
        reference = SkeletonReference.from_frame(motion, 0)
        if not reference.is_t_pose():
            raise Pose2MeshError(f"{tpose}: frame 0 is not a T-pose (arms sideways, legs down)")
        return reference
    for motion in motions:
        if is_cc_base(motion):
            reference = SkeletonReference.from_frame(motion, 0)
            if reference.is_t_pose():
                return reference
    return None
