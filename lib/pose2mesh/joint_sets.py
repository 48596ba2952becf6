"""Joint-set definitions (names, skeleton, flip pairs, root, evaluation joints).

Orders and contents follow the official Pose2Mesh definitions (see DATA_FORMATS.md, 1.2).
A :class:`JointSet` is immutable; look one up with :func:`get_joint_set`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pose2mesh.errors import Pose2MeshError


@dataclass(frozen=True)
class JointSet:
    """A named, ordered set of body (or hand) joints.

    Attributes:
        name: registry name (``human36``, ``coco``, ``smpl``, ``mano``).
        joint_names: J names, in the network's input/output order.
        skeleton: bone edges as (i, j) index pairs.
        flip_pairs: left/right joint pairs swapped by a horizontal flip. For the hand (no
            flip pairs) this is empty and ``extra_graph_edges`` holds the finger links.
        root: index of the root joint that poses are made relative to.
        eval_joints: indices of the joints used by the evaluation metrics.
        extra_graph_edges: edges added to the input graph besides skeleton and flip pairs.
    """

    name: str
    joint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    root: int
    eval_joints: tuple[int, ...]
    extra_graph_edges: tuple[tuple[int, int], ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, joint_name: str) -> int:
        """Index of ``joint_name`` in this set (raises Pose2MeshError if absent)."""
        try:
            return self.joint_names.index(joint_name)
        except ValueError:
            raise Pose2MeshError(
                f"joint '{joint_name}' is not in joint set '{self.name}'"
            ) from None

    def graph_adjacency(self) -> np.ndarray:
        """(J, J) float32 0/1 input-graph adjacency: skeleton, flip pairs and extra edges
        in both directions plus self-loops (the original's input graph)."""
        adjacency = np.eye(self.num_joints, dtype=np.float32)
        for i, j in self.skeleton + self.flip_pairs + self.extra_graph_edges:
            adjacency[i, j] = adjacency[j, i] = 1.0
        return adjacency

    def flip_permutation(self) -> np.ndarray:
        """(J,) index array that swaps the rows of every flip pair."""
        order = np.arange(self.num_joints)
        for i, j in self.flip_pairs:
            order[i], order[j] = j, i
        return order


def _pairs(*pairs: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    return tuple(pairs)


HUMAN36 = JointSet(
    name="human36",
    joint_names=(
        "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso",
        "Neck", "Nose", "Head", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder",
        "R_Elbow", "R_Wrist",
    ),
    skeleton=_pairs(
        (0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12), (12, 13), (8, 14), (14, 15),
        (15, 16), (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6),
    ),
    flip_pairs=_pairs((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)),
    root=0,
    eval_joints=(1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16),
)

COCO = JointSet(
    name="coco",
    joint_names=(
        "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow",
        "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle",
        "R_Ankle", "Pelvis", "Neck",
    ),
    skeleton=_pairs(
        (1, 2), (0, 1), (0, 2), (2, 4), (1, 3), (6, 8), (8, 10), (5, 7), (7, 9), (12, 14),
        (14, 16), (11, 13), (13, 15), (17, 11), (17, 12), (17, 18), (18, 5), (18, 6),
        (18, 0),
    ),
    flip_pairs=_pairs(
        (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)
    ),
    root=17,
    eval_joints=tuple(range(19)),
)

SMPL = JointSet(
    name="smpl",
    joint_names=(
        "Pelvis", "L_Hip", "R_Hip", "Torso", "L_Knee", "R_Knee", "Spine", "L_Ankle",
        "R_Ankle", "Chest", "L_Toe", "R_Toe", "Neck", "L_Thorax", "R_Thorax", "Head",
        "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand",
        "R_Hand",
    ),
    skeleton=_pairs(
        (0, 1), (1, 4), (4, 7), (7, 10), (0, 2), (2, 5), (5, 8), (8, 11), (0, 3), (3, 6),
        (6, 9), (9, 14), (14, 17), (17, 19), (19, 21), (21, 23), (9, 13), (13, 16),
        (16, 18), (18, 20), (20, 22), (9, 12), (12, 15),
    ),
    flip_pairs=_pairs(
        (1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23)
    ),
    root=0,
    eval_joints=tuple(range(24)),
)

MANO = JointSet(
    name="mano",
    joint_names=(
        "Wrist", "Thumb_1", "Thumb_2", "Thumb_3", "Thumb_4", "Index_1", "Index_2",
        "Index_3", "Index_4", "Middle_1", "Middle_2", "Middle_3", "Middle_4", "Ring_1",
        "Ring_2", "Ring_3", "Ring_4", "Pinky_1", "Pinky_2", "Pinky_3", "Pinky_4",
    ),
    skeleton=_pairs(
        (0, 1), (0, 5), (0, 9), (0, 13), (0, 17), (1, 2), (2, 3), (3, 4), (5, 6), (6, 7),
        (7, 8), (9, 10), (10, 11), (11, 12), (13, 14), (14, 15), (15, 16), (17, 18),
        (18, 19), (19, 20),
    ),
    flip_pairs=(),
    root=0,
    eval_joints=tuple(range(21)),
    extra_graph_edges=_pairs(
        (1, 5), (5, 9), (9, 13), (13, 17), (2, 6), (6, 10), (10, 14), (14, 18), (3, 7),
        (7, 11), (11, 15), (15, 19), (4, 8), (8, 12), (12, 16), (16, 20),
    ),
)

JOINT_SETS: dict[str, JointSet] = {js.name: js for js in (HUMAN36, COCO, SMPL, MANO)}


def get_joint_set(name: str) -> JointSet:
    """Return the joint set called ``name``; unknown names raise a one-line Pose2MeshError."""
    try:
        return JOINT_SETS[name]
    except KeyError:
        raise Pose2MeshError(
            f"unknown joint set '{name}'; expected one of {sorted(JOINT_SETS)}"
        ) from None


def add_pelvis_and_neck(coco17: np.ndarray) -> np.ndarray:
    """Append Pelvis (mean of hips) and Neck (mean of shoulders) rows to COCO-17 joints.

    Args:
        coco17: (..., 17, C) joints in COCO keypoint order; every column (coordinates and,
            for detections, the score) is averaged.
    Returns:
        (..., 19, C) joints in the ``coco`` joint-set order.
    """
    pelvis = 0.5 * (coco17[..., 11:12, :] + coco17[..., 12:13, :])
    neck = 0.5 * (coco17[..., 5:6, :] + coco17[..., 6:7, :])
    return np.concatenate([coco17, pelvis, neck], axis=-2)
