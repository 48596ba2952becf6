"""Reading BVH motion capture files (hierarchy, channels, frames) and their forward kinematics.

A BVH file has a HIERARCHY section (nested ``ROOT``/``JOINT`` blocks, each with an
``OFFSET`` from its parent and a ``CHANNELS`` list; ``End Site`` blocks carry only an offset)
and a MOTION section (``Frames: N``, ``Frame Time: dt`` and N lines of channel values in
hierarchy order). Rotation channels are degrees and compose in the order listed: channels
``Zrotation Yrotation Xrotation`` mean the local rotation ``Rz Ry Rx``. Positions are in the
file's own units (cm for the CMU takes) and axes (y up for the CMU takes).

Every problem with a file is a :class:`~pose2mesh.errors.Pose2MeshError` whose one-line
message names the file and the problem.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pose2mesh.errors import Pose2MeshError

_ROTATION_AXES = {"Xrotation": 0, "Yrotation": 1, "Zrotation": 2}
_POSITION_AXES = {"Xposition": 0, "Yposition": 1, "Zposition": 2}


@dataclasses.dataclass(frozen=True)
class BvhMotion:
    """One BVH take.

    Attributes:
        path: the file it was read from (for messages).
        joint_names: (J,) joint names in hierarchy order (``End Site`` blocks excluded).
        parents: (J,) parent index of each joint, -1 for the root.
        offsets: (J, 3) offset of each joint from its parent, file units.
        channels: per joint, its channel names in file order.
        frame_time_s: seconds per frame.
        frames: (T, C) float64 channel values of every frame, hierarchy order.
    """

    path: str
    joint_names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    frame_time_s: float
    frames: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def world_rotations(self, frame_index: np.ndarray | None = None) -> np.ndarray:
        """(T', J, 3, 3) world rotation of every joint at the selected frames (all frames
        when ``frame_index`` is None)."""
        return self._forward_kinematics(frame_index)[0]

    def world_positions(self, frame_index: np.ndarray | None = None) -> np.ndarray:
        """(T', J, 3) world position of every joint head at the selected frames, file units."""
        return self._forward_kinematics(frame_index)[1]

    def _forward_kinematics(self, frame_index: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        frames = self.frames if frame_index is None else self.frames[frame_index]
        num_frames = frames.shape[0]
        rotations = np.empty((num_frames, len(self.joint_names), 3, 3))
        positions = np.empty((num_frames, len(self.joint_names), 3))
        column = 0
        for joint, names in enumerate(self.channels):
            values = frames[:, column:column + len(names)]
            column += len(names)
            local = np.broadcast_to(np.eye(3), (num_frames, 3, 3)).copy()
            translation = np.broadcast_to(self.offsets[joint], (num_frames, 3)).copy()
            for k, name in enumerate(names):
                if name in _ROTATION_AXES:
                    local = local @ axis_rotation(_ROTATION_AXES[name], np.deg2rad(values[:, k]))
                else:
                    translation[:, _POSITION_AXES[name]] += values[:, k]
            parent = self.parents[joint]
            if parent < 0:
                rotations[:, joint] = local
                positions[:, joint] = translation
            else:
                rotations[:, joint] = rotations[:, parent] @ local
                positions[:, joint] = positions[:, parent] + np.einsum(
                    "tij,tj->ti", rotations[:, parent], translation
                )
        return rotations, positions


def axis_rotation(axis: int, angle_rad: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations by ``angle_rad`` (T,) about coordinate axis 0 (x), 1 (y) or 2 (z)."""
    cos, sin = np.cos(angle_rad), np.sin(angle_rad)
    matrix = np.zeros(angle_rad.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrix[..., axis, axis] = 1.0
    matrix[..., i, i] = cos
    matrix[..., j, j] = cos
    matrix[..., i, j] = -sin
    matrix[..., j, i] = sin
    return matrix


def read_bvh(path: str | Path) -> BvhMotion:
    """Parse a BVH file. Raises Pose2MeshError naming the file when it does not parse or
    holds no frames."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as err:
        raise Pose2MeshError(f"{path}: cannot read BVH file ({err})") from None
    try:
        return _parse(str(path), text.split())
    except (ValueError, IndexError) as err:
        raise Pose2MeshError(f"{path}: not a valid BVH file ({err})") from None


def _parse(path: str, tokens: list[str]) -> BvhMotion:
    position = 0

    def expect(word: str) -> None:
        nonlocal position
        if position >= len(tokens) or tokens[position] != word:
            found = tokens[position] if position < len(tokens) else "end of file"
            raise ValueError(f"expected '{word}', found '{found}'")
        position += 1

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise ValueError("unexpected end of file")
        position += 1
        return tokens[position - 1]

    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []

    expect("HIERARCHY")
    expect("ROOT")
    stack: list[int] = []  # open blocks: joint index, or -2 for an End Site
    pending_parent = -1
    names.append(take())
    parents.append(pending_parent)
    expect("{")
    stack.append(0)
    while stack:
        word = take()
        if word == "OFFSET":
            values = [float(take()) for _ in range(3)]
            if stack[-1] >= 0:
                offsets.append(values)
        elif word == "CHANNELS":
            count = int(take())
            joint_channels = tuple(take() for _ in range(count))
            unknown = [c for c in joint_channels if c not in _ROTATION_AXES and c not in _POSITION_AXES]
            if unknown:
                raise ValueError(f"joint '{names[stack[-1]]}' has unknown channels {unknown}")
            channels.append(joint_channels)
        elif word == "JOINT":
            parents.append(stack[-1])
            names.append(take())
            expect("{")
            stack.append(len(names) - 1)
        elif word == "End":
            expect("Site")
            expect("{")
            stack.append(-2)
        elif word == "}":
            closed = stack.pop()
            if closed >= 0 and (len(offsets) <= closed or len(channels) <= closed):
                raise ValueError(f"joint '{names[closed]}' lacks an OFFSET or CHANNELS line")
        else:
            raise ValueError(f"unexpected '{word}' in the hierarchy")
    expect("MOTION")
    expect("Frames:")
    num_frames = int(take())
    expect("Frame")
    expect("Time:")
    frame_time_s = float(take())
    if num_frames <= 0:
        raise Pose2MeshError(f"{path}: the BVH file holds no frames")
    if not frame_time_s > 0:
        raise ValueError(f"frame time must be positive, got {frame_time_s}")
    num_channels = sum(len(c) for c in channels)
    values = tokens[position:]
    if len(values) != num_frames * num_channels:
        raise ValueError(
            f"{num_frames} frames of {num_channels} channels need {num_frames * num_channels} "
            f"values, found {len(values)}"
        )
    frames = np.asarray(values, dtype=np.float64).reshape(num_frames, num_channels)
    if not np.isfinite(frames).all():
        raise ValueError("frame values are not all finite")
    return BvhMotion(
        path=path,
        joint_names=tuple(names),
        parents=np.asarray(parents, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.float64),
        channels=tuple(channels),
        frame_time_s=frame_time_s,
        frames=frames,
    )
