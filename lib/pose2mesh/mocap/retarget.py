"""Retargeting BVH motion onto anny's body rig (the ``pose_aa`` of :class:`AnnyModel`).

World-rotation transfer (``shared/mocap/README.md``, "Driving anny with it"):

1. Each supported skeleton's joints are renamed to canonical (CMU MotionBuilder) names:
   iClone's ``CC_Base`` rig (the converted CMU takes) and CMU's own BVH skeleton.
2. The motion of a mocap bone c at frame t is its world rotation relative to the skeleton's
   T-pose, ``Q_c(t) Q_c(ref)^T``, turned into anny's world axes by ``A`` (x = subject's
   left, y = back, z = up; ``A`` is found from the T-pose: hips line and up direction).
3. anny rests in an A-pose, so each mapped anny bone b gets a rest correction ``C_b``: the
   smallest rotation that turns anny's reference bone direction (bone head to the head of
   the next mapped bone) onto the mocap T-pose direction. The world delta of b is
   ``D_b = A Q_c(t) Q_c(ref)^T A^T C_b``; unmapped bones (twist helpers, fingers, toes)
   keep their parent's delta.
4. anny's ``local-bone-world`` parameterization composes ``D_b = D_parent W_b L_b W_b^T``
   (W_b: the bone's reference orientation, checked against anny's forward kinematics in the
   tests), so the local rotation is ``L_b = W_b^T D_parent^T D_b W_b``; the root's
   ``pose_aa`` is ``D_root`` itself, in world axes.

Bone lengths stay anny's (the phenotype decides proportions); the root translation is dropped.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from pose2mesh.errors import Pose2MeshError
from pose2mesh.mocap.bvh import BvhMotion
from pose2mesh.rotations import local_from_world_deltas, rotation_between

CC_BASE_NAMES: dict[str, str] = {
    "CC_Base_Hip": "Hips", "CC_Base_Waist": "LowerBack", "CC_Base_Spine01": "Spine",
    "CC_Base_Spine02": "Spine1", "CC_Base_NeckTwist01": "Neck", "CC_Base_NeckTwist02": "Neck1",
    "CC_Base_Head": "Head",
    **{f"CC_Base_{s}_{cc}": f"{side}{cmu}" for s, side in (("L", "Left"), ("R", "Right"))
       for cc, cmu in (("Thigh", "UpLeg"), ("Calf", "Leg"), ("Foot", "Foot"),
                       ("ToeBase", "ToeBase"), ("Clavicle", "Shoulder"), ("Upperarm", "Arm"),
                       ("Forearm", "ForeArm"), ("Hand", "Hand"), ("Mid1", "HandMiddle1"))},
}
"""iClone CC_Base joint names -> canonical names (CMU's own skeleton already uses them)."""

# canonical joint -> (anny bone, canonical joint and anny bone that give the bone direction)
_BODY_MAP: dict[str, tuple[str, tuple[str, str] | None]] = {
    "Hips": ("root", None),
    "LowerBack": ("spine05", ("Spine", "spine03")),
    "Spine": ("spine03", ("Spine1", "spine02")),
    "Spine1": ("spine02", ("Neck", "neck01")),
    "Neck": ("neck01", ("Neck1", "neck02")),
    "Neck1": ("neck02", ("Head", "head")),
    "Head": ("head", None),
}
for _side, _s in (("Left", "L"), ("Right", "R")):
    _BODY_MAP.update({
        f"{_side}UpLeg": (f"upperleg01.{_s}", (f"{_side}Leg", f"lowerleg01.{_s}")),
        f"{_side}Leg": (f"lowerleg01.{_s}", (f"{_side}Foot", f"foot.{_s}")),
        f"{_side}Foot": (f"foot.{_s}", (f"{_side}ToeBase", f"toe3-1.{_s}")),
        f"{_side}Shoulder": (f"clavicle.{_s}", (f"{_side}Arm", f"upperarm01.{_s}")),
        f"{_side}Arm": (f"upperarm01.{_s}", (f"{_side}ForeArm", f"lowerarm01.{_s}")),
        f"{_side}ForeArm": (f"lowerarm01.{_s}", (f"{_side}Hand", f"wrist.{_s}")),
        f"{_side}Hand": (f"wrist.{_s}", (f"{_side}HandMiddle1", f"finger3-1.{_s}")),
    })
REQUIRED_JOINTS: tuple[str, ...] = tuple(_BODY_MAP)
"""Canonical joints a take must have (any other joint is ignored)."""
_DIRECTION_JOINTS = {d[0] for _, d in _BODY_MAP.values() if d is not None}


@dataclasses.dataclass(frozen=True)
class AnnyRig:
    """What retargeting needs of anny's body rig, at its reference pose (phenotype 0.5).

    Attributes:
        bone_labels: (NB,) bone names.
        parents: (NB,) parent index, -1 for the root; parents come before children.
        orientations: (NB, 3, 3) reference bone orientations W_b (world axes).
        heads_m: (NB, 3) bone heads at the reference pose, metres.
    """

    bone_labels: tuple[str, ...]
    parents: np.ndarray
    orientations: np.ndarray
    heads_m: np.ndarray

    @classmethod
    def from_body_model(cls, body_model) -> "AnnyRig":
        """From an :class:`~pose2mesh.body_models.anny_model.AnnyModel` body."""
        anny = body_model.anny
        num_bones = len(body_model.bone_labels)
        with torch.no_grad():
            out = anny(
                pose_parameters=torch.eye(4).expand(1, num_bones, 4, 4),
                phenotype_kwargs=torch.full((1, len(body_model.phenotype_labels)), 0.5),
            )
        return cls(
            bone_labels=tuple(body_model.bone_labels),
            parents=np.asarray(anny.bone_parents, dtype=np.int64),
            orientations=anny.reference_bone_orientations.double().numpy(),
            heads_m=out["bone_poses"][0, :, :3, 3].double().numpy(),
        )


@dataclasses.dataclass(frozen=True)
class SkeletonReference:
    """The T-pose of a mocap skeleton, by canonical joint name.

    Attributes:
        rotations: canonical name -> (3, 3) world rotation at the T-pose.
        positions: canonical name -> (3,) world position at the T-pose, file units.
        offsets: canonical name -> (3,) offset from the parent (to check a take's skeleton).
    """

    rotations: dict[str, np.ndarray]
    positions: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, motion: BvhMotion, frame: int | None) -> "SkeletonReference":
        """The pose of ``motion`` at ``frame``, or its all-zero-rotation pose (None)."""
        if frame is None:
            zero = dataclasses.replace(motion, frames=np.zeros((1, motion.frames.shape[1])))
            rotations, positions = zero._forward_kinematics(None)
        else:
            rotations, positions = motion._forward_kinematics(np.array([frame]))
        names = canonical_names(motion)
        index = {name: i for i, name in enumerate(names) if name is not None}
        return cls(
            rotations={name: rotations[0, i] for name, i in index.items()},
            positions={name: positions[0, i] for name, i in index.items()},
            offsets={name: motion.offsets[i] for name, i in index.items()},
        )

    def is_t_pose(self, tolerance_deg: float = 12.0) -> bool:
        """Arms out sideways, legs straight down (within ``tolerance_deg``)."""
        up = _unit(self.positions["Head"] - self.positions["Hips"])
        left = _unit(self.positions["LeftUpLeg"] - self.positions["RightUpLeg"])
        checks = []
        for side, sign in (("Left", 1.0), ("Right", -1.0)):
            arm = _unit(self.positions[f"{side}Hand"] - self.positions[f"{side}Arm"])
            leg = _unit(self.positions[f"{side}Foot"] - self.positions[f"{side}UpLeg"])
            checks += [arm @ (sign * left), leg @ -up]
        return bool(min(checks) > np.cos(np.deg2rad(tolerance_deg)))

    def axes_to_anny(self) -> np.ndarray:
        """(3, 3) rotation A from the file's world axes to anny's (x left, -y front, z up).

        Up is the file's coordinate axis nearest to hips -> head (BVH worlds have an axis
        up, and the T-pose's own spine may lean); left is the hips line made level."""
        body_up = self.positions["Head"] - self.positions["Hips"]
        axis = int(np.argmax(np.abs(body_up)))
        up = np.sign(body_up[axis]) * np.eye(3)[axis]
        left = self.positions["LeftUpLeg"] - self.positions["RightUpLeg"]
        left = _unit(left - (left @ up) * up)
        forward = np.cross(left, up)
        return np.stack([left, -forward, up])


def canonical_names(motion: BvhMotion) -> list[str | None]:
    """Canonical name of each joint of ``motion`` (None for joints that are not mapped)."""
    known = set(REQUIRED_JOINTS) | _DIRECTION_JOINTS
    names = [CC_BASE_NAMES.get(name, name) for name in motion.joint_names]
    return [name if name in known else None for name in names]


def check_skeleton(motion: BvhMotion, reference: SkeletonReference | None = None) -> None:
    """Raise Pose2MeshError naming the file when required joints are missing or (with a
    reference) a mapped joint's offset differs from the reference skeleton's."""
    names = set(canonical_names(motion)) - {None}
    missing = [name for name in REQUIRED_JOINTS if name not in names]
    if missing:
        raise Pose2MeshError(
            f"{motion.path}: unknown skeleton: no bones for {missing} (supported: iClone "
            "CC_Base as in the converted CMU takes, or CMU's own BVH names)"
        )
    if reference is None:
        return
    for name, offset, parent in zip(canonical_names(motion), motion.offsets, motion.parents):
        if parent < 0 or name == "Hips":  # the pelvis offset places the body, not a bone
            continue
        if name is not None and name in reference.offsets and not np.allclose(
            offset, reference.offsets[name], atol=1e-3 * (1 + np.abs(offset).max())
        ):
            raise Pose2MeshError(
                f"{motion.path}: bone '{name}' has offset {offset.round(3).tolist()}, the "
                f"reference T-pose's skeleton has {reference.offsets[name].round(3).tolist()}"
            )


class Retargeter:
    """BVH frames -> anny body ``pose_aa`` (T, NB, 3) radians, for one mocap skeleton.

    Args:
        rig: anny's body rig (:meth:`AnnyRig.from_body_model`).
        reference: the skeleton's T-pose.
    """

    def __init__(self, rig: AnnyRig, reference: SkeletonReference):
        self.rig = rig
        self.reference = reference
        self.axes = reference.axes_to_anny()
        index = {label: i for i, label in enumerate(rig.bone_labels)}
        self.mapped: dict[int, str] = {}  # anny bone -> canonical joint
        self.corrections = np.broadcast_to(np.eye(3), (len(rig.bone_labels), 3, 3)).copy()
        for joint, (bone, direction) in _BODY_MAP.items():
            self.mapped[index[bone]] = joint
            if direction is None or direction[0] not in reference.positions:
                continue
            child_joint, child_bone = direction
            anny_dir = rig.heads_m[index[child_bone]] - rig.heads_m[index[bone]]
            mocap_dir = self.axes @ (reference.positions[child_joint] - reference.positions[joint])
            self.corrections[index[bone]] = rotation_between(
                torch.from_numpy(anny_dir), torch.from_numpy(mocap_dir)).numpy()

    def __call__(self, motion: BvhMotion, frame_index: np.ndarray) -> np.ndarray:
        """(T, NB, 3) float64 ``pose_aa`` of ``motion`` at ``frame_index`` (T,)."""
        check_skeleton(motion, self.reference)
        world = motion.world_rotations(frame_index)
        column = {name: i for i, name in enumerate(canonical_names(motion)) if name is not None}
        num_frames, num_bones = len(frame_index), len(self.rig.bone_labels)
        deltas = np.empty((num_frames, num_bones, 3, 3))
        for bone in range(num_bones):
            joint = self.mapped.get(bone)
            if joint is None:
                deltas[:, bone] = deltas[:, self.rig.parents[bone]]
                continue
            motion_world = world[:, column[joint]] @ self.reference.rotations[joint].T
            deltas[:, bone] = self.axes @ motion_world @ self.axes.T @ self.corrections[bone]
        return local_from_world_deltas(
            torch.from_numpy(deltas), torch.from_numpy(self.rig.parents),
            torch.from_numpy(self.rig.orientations),
        ).numpy()


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)
