"""2D drawing: skeletons over an image or a blank canvas, and image file I/O.

Images are RGB uint8 (H, W, 3) throughout; :func:`read_image` / :func:`write_image` convert
from/to the BGR order OpenCV uses on disk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import JointSet, get_joint_set
from pose2mesh.vis.mesh_io import atomic_write_bytes
from pose2mesh.vis.render import PALETTE_RGB

LEFT_RGB = (40, 120, 255)
RIGHT_RGB = (255, 90, 40)
CENTRE_RGB = (40, 200, 90)
MISSING_RGB = (230, 0, 0)
MISSING_BONE_RGB = (150, 150, 150)
FINGER_RGB = ((230, 60, 60), (240, 170, 20), (40, 190, 70), (30, 150, 230), (170, 70, 220))
CANVAS_RGB = (255, 255, 255)


def canvas_shape_for_pose(joints_xy, margin_px: int = 40) -> tuple[int, int]:
    """(H, W) of a blank canvas that shows pixel-coordinate joints (..., J, 2+) with a margin."""
    xy = np.asarray(joints_xy, dtype=np.float64)[..., :2].reshape(-1, 2)
    far = np.nan_to_num(xy.max(0), nan=0.0)
    width, height = (int(np.ceil(max(v, 0.0))) + margin_px for v in far)
    return height, width


def _side_color(name: str) -> tuple[int, int, int]:
    if name.startswith("L_"):
        return LEFT_RGB
    if name.startswith("R_"):
        return RIGHT_RGB
    return CENTRE_RGB


def _joint_colors(joint_set: JointSet) -> list[tuple[int, int, int]]:
    if joint_set.name == "mano":  # wrist + 4 joints per finger, one colour per finger
        return [CENTRE_RGB] + [FINGER_RGB[(j - 1) // 4] for j in range(1, joint_set.num_joints)]
    return [_side_color(name) for name in joint_set.joint_names]


def draw_skeleton(
    image: np.ndarray | None,
    joints: np.ndarray,
    joint_set: str | JointSet,
    canvas_hw: tuple[int, int] | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw one person's skeleton; missing joints (confidence <= 0) as red crosses.

    Bones are coloured by side (left blue, right orange, centre green; hands: one colour per
    finger); a bone touching a missing joint is drawn thin and grey.

    Args:
        image: RGB uint8 (H, W, 3) to draw on (not modified), or None for a white canvas of
            ``canvas_hw`` (default :func:`canvas_shape_for_pose`).
        joints: (J, 2) or (J, 3) pixel coordinates ``[x, y, confidence]``.
        joint_set: name or JointSet giving the joint order and skeleton.
        thickness: line thickness in pixels (default scales with the image size).
    Returns:
        RGB uint8 (H, W, 3).
    """
    joint_set = get_joint_set(joint_set) if isinstance(joint_set, str) else joint_set
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 2 or joints.shape[0] != joint_set.num_joints or joints.shape[1] < 2:
        raise ValueError(
            f"draw_skeleton: expected ({joint_set.num_joints}, 2|3) joints, got {joints.shape}"
        )
    if image is None:
        height, width = canvas_hw or canvas_shape_for_pose(joints)
        canvas = np.full((height, width, 3), CANVAS_RGB, dtype=np.uint8)
    else:
        canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if thickness is None:
        thickness = max(2, round(max(canvas.shape[:2]) / 250))
    confidence = joints[:, 2] if joints.shape[1] > 2 else np.ones(len(joints))
    missing = ~(confidence > 0)
    points = [tuple(int(round(v)) for v in p) for p in joints[:, :2]]
    colors = _joint_colors(joint_set)

    for i, j in joint_set.skeleton:
        if missing[i] or missing[j]:
            cv2.line(canvas, points[i], points[j], MISSING_BONE_RGB, max(1, thickness // 2),
                     cv2.LINE_AA)
        else:
            color = colors[j] if colors[j] != CENTRE_RGB else colors[i]
            cv2.line(canvas, points[i], points[j], color, thickness, cv2.LINE_AA)
    radius = thickness + 1
    for index, point in enumerate(points):
        if missing[index]:
            cross = 2 * radius + 1
            cv2.drawMarker(canvas, point, MISSING_RGB, cv2.MARKER_TILTED_CROSS, 2 * cross,
                           thickness, cv2.LINE_AA)
        else:
            cv2.circle(canvas, point, radius, colors[index], -1, cv2.LINE_AA)
            cv2.circle(canvas, point, radius, (0, 0, 0), 1, cv2.LINE_AA)
    if missing.any():
        _legend(canvas, f"x = missing joint ({int(missing.sum())})", thickness)
    return canvas


def draw_people(image: np.ndarray | None, poses_px: Sequence[np.ndarray], joint_set: JointSet,
                canvas_hw: tuple[int, int], labels: Sequence[int]) -> np.ndarray:
    """Every person's skeleton (:func:`draw_skeleton`, missing joints as crosses) over
    ``image`` or a white canvas of ``canvas_hw``; with several people each is labelled above
    its skeleton, in its mesh colour (:data:`~pose2mesh.vis.render.PALETTE_RGB`).

    Args:
        poses_px: (J, 3) ``[u, v, confidence]`` per person.
        labels: the number written over each person (its index in the input file).
    """
    canvas = image
    for pose in poses_px:
        canvas = draw_skeleton(canvas, pose, joint_set, canvas_hw=canvas_hw)
    if len(poses_px) > 1:
        scale = max(0.5, max(canvas_hw) / 1000.0)
        for k, (pose, label) in enumerate(zip(poses_px, labels)):
            xy = np.asarray(pose)[:, :2]
            origin = (int(xy[:, 0].min()), max(int(xy[:, 1].min()) - 8, int(20 * scale)))
            color = PALETTE_RGB[k % len(PALETTE_RGB)]
            for ink, width in (((0, 0, 0), 4), (color, 2)):
                cv2.putText(canvas, str(label), origin, cv2.FONT_HERSHEY_SIMPLEX, scale, ink,
                            max(1, round(width * scale)), cv2.LINE_AA)
    return canvas


def _legend(canvas: np.ndarray, text: str, thickness: int) -> None:
    scale = 0.25 * thickness + 0.1
    origin = (8, 8 + int(22 * scale))
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                thickness + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, MISSING_RGB,
                max(1, thickness // 2), cv2.LINE_AA)


def read_image(path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); Pose2MeshError names an unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise Pose2MeshError(f"{path}: image file not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise Pose2MeshError(f"{path}: cannot read as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_image(path, rgb: np.ndarray) -> Path:
    """Write RGB uint8 ``rgb`` atomically (temp file + rename); parent folders are created.
    The format follows the suffix (``.png``, ``.jpg``)."""
    path = Path(path)
    try:
        ok, encoded = cv2.imencode(path.suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except cv2.error:
        ok = False
    if not ok:
        raise Pose2MeshError(f"{path}: cannot encode an image with suffix '{path.suffix}'")
    return atomic_write_bytes(path, encoded.tobytes())

