"""Pose and phenotype priors for the anny body and right-hand models.

Poses are the ``pose_aa`` parameter of the anny body models (B, NB, 3), radians: per-bone
axis-angle deltas in anny's ``local-bone-world`` parameterization. Each bone rotates about
its head in the axes of its own reference frame (all zero = the reference pose: anny's
A-pose, arms ~40 deg from the body, elbows ~40 deg bent); bone 0, the root, is the global
orientation in world axes (the body root's frame is the world's). Anny bones follow the
Blender convention: the local y axis runs along the bone. Measured on the anny rig (world:
+x = subject's left, -y = front, +z = up), in the *left-side convention* of every table
below:

=====================  ===============================  ==========================  ==============
bone (left side)       +x                               +y                          +z
=====================  ===============================  ==========================  ==============
upperleg01 (hip)       extension (flexion is -x)        internal/external rotation  adduction
lowerleg01 (knee)      flexion                          tibial rotation             (varus/valgus)
foot (ankle)           plantarflexion (toes down)       rotation                    inversion
spine0*, neck0*, head  forward flexion                  axial twist                 lateral bend
clavicle, shoulder01   protraction                      roll                        elevation
upperarm01 (shoulder)  forward flexion                  humeral twist               abduction
lowerarm01 (elbow)     flexion (rest is ~40 deg bent)   pronation/supination        --
wrist                  flexion/extension                twist                       deviation
fingers (1-3 joints)   flexion (curl toward the palm)   twist                       spread
root                   pitch forward                    roll                        yaw
=====================  ===============================  ==========================  ==============

The ``*02`` bones (upperleg02, lowerleg02, upperarm02, lowerarm02) are twist helpers in the
middle of a limb: bending them would kink the limb, so they only twist.

Mirroring: anny's left and right reference frames are mirror images such that the
left-right reflection of a pose maps the rotation vector of bone ``b`` to ``(x, -y, -z)``
on its twin (a central bone is its own twin). Right-side values in the tables are written
in the left-side convention (mirrored), so a symmetric pose lists equal values for both
sides; limits of right bones are mirrored the same way. Limits apply per component of the
rotation vector (an approximation of per-axis Euler limits, exact for single-axis poses).

Phenotypes: anny's ``age`` parameter interpolates its age blendshapes at anchors
(-1/3, 0, 1/3, 2/3, 1) = (newborn, baby, child, young, old) (``anny/models/phenotype.py``).
Its calibration against WHO growth data (``anny/data/shape_calibration``) maps the age
parameter to a morphological age in years piecewise-linearly through
(0, 0.05, 0.215, 0.415, 0.67, 0.77, 0.83, 1.0) <-> (0, 1, 4, 11, 16, 18, 64, 110) years, so
adults (18+ years) are age >= 0.77; anny's default age 0.5 looks about 13 years old.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from pose2mesh.errors import Pose2MeshError

Vec3 = tuple[float, float, float]

# Mirror map of a rotation vector in a bone's local frame onto its left/right twin.
MIRROR_SIGNS: Vec3 = (1.0, -1.0, -1.0)

PHENOTYPE_LABELS = ("gender", "age", "muscle", "weight", "height", "proportions")
# anny age parameter <-> morphological age in years (anny/data/shape_calibration/*.pth).
AGE_PARAM_ANCHORS = (0.0, 0.05, 0.215, 0.415, 0.67, 0.77, 0.83, 1.0)
AGE_YEARS_ANCHORS = (0.0, 1.0, 4.0, 11.0, 16.0, 18.0, 64.0, 110.0)
ADULT_AGE_YEARS = (18.0, 80.0)
ALL_AGES_YEARS = (1.0, 90.0)
# anny's height parameter spans adult statures of ~1.2-2.45 m; 0.15-0.6 gives about
# 1.52-2.01 m for men (gender 0) and 1.38-1.87 m for women (gender 1).
HEIGHT_RANGE = (0.15, 0.6)


def _anny_body_bones() -> tuple[str, ...]:
    labels = ["root"]
    for s in "LR":
        labels += [f"{b}.{s}" for b in ("pelvis", "upperleg01", "upperleg02", "lowerleg01",
                                        "lowerleg02", "foot", "toe1-1", "toe1-2")]
        labels += [f"toe{t}-{k}.{s}" for t in range(2, 6) for k in range(1, 4)]
    labels += ["spine05", "spine04", "spine03", "spine02", "spine01"]
    for s in "LR":
        labels += [f"{b}.{s}" for b in ("clavicle", "shoulder01", "upperarm01", "upperarm02",
                                        "lowerarm01", "lowerarm02", "wrist")]
        labels += _hand_finger_bones(s)
    return tuple(labels + ["neck01", "neck02", "neck03", "head", "eye.L", "eye.R"])


def _hand_finger_bones(side: str) -> list[str]:
    labels = [f"finger1-{k}.{side}" for k in range(1, 4)]
    for finger in range(2, 6):
        labels += [f"metacarpal{finger - 1}.{side}"]
        labels += [f"finger{finger}-{k}.{side}" for k in range(1, 4)]
    return labels


# Bone labels of anny's default body rig (104 bones) and right-hand rig (21 bones).
ANNY_BODY_BONES: tuple[str, ...] = _anny_body_bones()
ANNY_HAND_BONES: tuple[str, ...] = ("root", "wrist.R", *_hand_finger_bones("R"))

# ---------------------------------------------------------------------------------------
# Body: joint limits, degrees, ((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi)), left convention.
# Keys are bone names without side; "finger", "thumb", "metacarpal" and "toe" cover groups.
_BODY_LIMITS_DEG: dict[str, tuple[tuple[float, float], ...]] = {
    "pelvis": ((-3, 3), (-3, 3), (-3, 3)),
    "upperleg01": ((-125, 25), (-40, 40), (-45, 20)),
    "upperleg02": ((-3, 3), (-20, 20), (-3, 3)),
    "lowerleg01": ((-5, 150), (-10, 10), (-4, 4)),
    "lowerleg02": ((-3, 3), (-15, 15), (-3, 3)),
    "foot": ((-30, 50), (-15, 15), (-25, 25)),
    "toe": ((-25, 25), (-5, 5), (-5, 5)),
    "spine": ((-8, 18), (-10, 10), (-8, 8)),
    "neck": ((-15, 15), (-20, 20), (-12, 12)),
    "head": ((-25, 20), (-25, 25), (-15, 15)),
    "eye": ((-10, 10), (-10, 10), (-10, 10)),
    "clavicle": ((-10, 20), (-5, 5), (-10, 25)),
    "shoulder01": ((-10, 20), (-5, 5), (-10, 20)),
    "upperarm01": ((-60, 150), (-70, 70), (-40, 120)),
    "upperarm02": ((-3, 3), (-30, 30), (-3, 3)),
    "lowerarm01": ((-40, 105), (-20, 20), (-5, 5)),
    "lowerarm02": ((-3, 3), (-60, 60), (-3, 3)),
    "wrist": ((-60, 60), (-10, 10), (-25, 25)),
    "thumb": ((-20, 40), (-15, 15), (-20, 20)),
    "finger": ((-15, 60), (-5, 5), (-10, 10)),
    "metacarpal": ((-5, 5), (-5, 5), (-5, 5)),
}
# Bones that stay near rest (small noise only, never sampled over their full range).
_BODY_MINOR_GROUPS = ("pelvis", "toe", "eye", "thumb", "finger", "metacarpal")

_SPINE = ("spine05", "spine04", "spine03", "spine02", "spine01")
_NECK = ("neck01", "neck02", "neck03")


def _spread(bones: Sequence[str], total: Vec3) -> dict[str, Vec3]:
    """Distribute a rotation evenly over a chain of bones."""
    n = len(bones)
    return {bone: (total[0] / n, total[1] / n, total[2] / n) for bone in bones}


# Arms hanging beside the body (from the A-pose: adduct 32 deg, elbows 15 deg bent).
_ARMS_DOWN = {"upperarm01": (5.0, 0.0, -32.0), "lowerarm01": (-25.0, 0.0, 0.0)}

# Key poses: bone (no side = both sides) -> rotation vector in degrees, left convention.
BODY_KEY_POSES_DEG: dict[str, dict[str, Vec3]] = {
    "a_pose": {},
    "t_pose": {"upperarm01": (0.0, 0.0, 50.0), "lowerarm01": (-40.0, 0.0, 0.0)},
    "standing": {**_ARMS_DOWN, "lowerleg01": (3.0, 0.0, 0.0)},
    # Walking cycle, left leg leading; mirroring gives the other half of the cycle.
    "walk_contact": {
        "upperleg01.L": (-25.0, 0.0, 0.0), "lowerleg01.L": (5.0, 0.0, 0.0),
        "foot.L": (-8.0, 0.0, 0.0),
        "upperleg01.R": (15.0, 0.0, 0.0), "lowerleg01.R": (15.0, 0.0, 0.0),
        "foot.R": (15.0, 0.0, 0.0),
        "upperarm01.L": (-20.0, 0.0, -32.0), "upperarm01.R": (25.0, 0.0, -32.0),
        "lowerarm01": (-20.0, 0.0, 0.0), "spine03": (0.0, 4.0, 0.0),
    },
    "walk_passing": {
        "upperleg01.L": (-2.0, 0.0, 0.0), "lowerleg01.L": (10.0, 0.0, 0.0),
        "upperleg01.R": (-25.0, 0.0, 0.0), "lowerleg01.R": (60.0, 0.0, 0.0),
        "foot.R": (5.0, 0.0, 0.0),
        **_ARMS_DOWN,
    },
    "walk_toe_off": {
        "upperleg01.L": (-15.0, 0.0, 0.0), "lowerleg01.L": (5.0, 0.0, 0.0),
        "upperleg01.R": (12.0, 0.0, 0.0), "lowerleg01.R": (40.0, 0.0, 0.0),
        "foot.R": (30.0, 0.0, 0.0),
        "upperarm01.L": (-15.0, 0.0, -32.0), "upperarm01.R": (20.0, 0.0, -32.0),
        "lowerarm01": (-20.0, 0.0, 0.0),
    },
    "run": {
        "root": (10.0, 0.0, 0.0),
        "upperleg01.L": (-60.0, 0.0, 0.0), "lowerleg01.L": (80.0, 0.0, 0.0),
        "foot.L": (-5.0, 0.0, 0.0),
        "upperleg01.R": (10.0, 0.0, 0.0), "lowerleg01.R": (35.0, 0.0, 0.0),
        "foot.R": (30.0, 0.0, 0.0),
        "upperarm01.L": (-35.0, 0.0, -30.0), "upperarm01.R": (45.0, 0.0, -30.0),
        "lowerarm01": (50.0, 0.0, 0.0),
    },
    "sitting": {
        "upperleg01": (-90.0, 0.0, -3.0), "lowerleg01": (90.0, 0.0, 0.0),
        "upperarm01": (20.0, 0.0, -30.0), "lowerarm01": (35.0, 0.0, 0.0),
    },
    "squatting": {
        "root": (20.0, 0.0, 0.0),
        "upperleg01": (-120.0, 0.0, -12.0), "lowerleg01": (135.0, 0.0, 0.0),
        "foot": (-30.0, 0.0, 0.0),
        "upperarm01": (45.0, 0.0, -25.0), "lowerarm01": (20.0, 0.0, 0.0),
        **_spread(_SPINE, (15.0, 0.0, 0.0)),
    },
    "kneeling": {
        "upperleg01": (-10.0, 0.0, 0.0), "lowerleg01": (100.0, 0.0, 0.0),
        "foot": (40.0, 0.0, 0.0),
        **_ARMS_DOWN,
    },
    "kneeling_one_knee": {
        "upperleg01.L": (-90.0, 0.0, 0.0), "lowerleg01.L": (90.0, 0.0, 0.0),
        "upperleg01.R": (0.0, 0.0, 0.0), "lowerleg01.R": (90.0, 0.0, 0.0),
        "foot.R": (-20.0, 0.0, 0.0),
        "upperarm01.L": (30.0, 0.0, -30.0), "lowerarm01.L": (40.0, 0.0, 0.0),
        "upperarm01.R": (5.0, 0.0, -32.0), "lowerarm01.R": (-25.0, 0.0, 0.0),
    },
    "bending_forward": {
        "root": (60.0, 0.0, 0.0), "upperleg01": (-60.0, 0.0, 0.0),
        **_spread(_SPINE, (30.0, 0.0, 0.0)), **_spread(_NECK, (-10.0, 0.0, 0.0)),
        "upperarm01": (80.0, 0.0, -30.0), "lowerarm01": (-30.0, 0.0, 0.0),
    },
    "reaching_forward": {
        "upperarm01": (85.0, 0.0, -30.0), "lowerarm01": (-35.0, 0.0, 0.0),
        "clavicle": (12.0, 0.0, 0.0), **_spread(_SPINE, (10.0, 0.0, 0.0)),
    },
    "reaching_up": {
        "upperarm01.L": (5.0, 0.0, 120.0), "lowerarm01.L": (-35.0, 0.0, 0.0),
        "clavicle.L": (0.0, 0.0, 15.0),
        "upperarm01.R": (5.0, 0.0, -32.0), "lowerarm01.R": (-25.0, 0.0, 0.0),
        **_spread(_SPINE, (0.0, 0.0, -8.0)),
    },
    "reaching_side": {
        "upperarm01.L": (0.0, 0.0, 50.0), "lowerarm01.L": (-40.0, 0.0, 0.0),
        "upperarm01.R": (5.0, 0.0, -32.0), "lowerarm01.R": (-25.0, 0.0, 0.0),
        **_spread(_SPINE, (0.0, 0.0, -10.0)),
    },
    "arms_raised": {
        "upperarm01": (5.0, 0.0, 120.0), "lowerarm01": (-30.0, 0.0, 0.0),
        "clavicle": (0.0, 0.0, 15.0),
    },
    "crossing_arms": {
        "upperarm01.L": (30.0, 65.0, -22.0), "upperarm01.R": (40.0, 65.0, -22.0),
        "lowerarm01": (55.0, 0.0, 0.0),
    },
    "lying_supine": {"root": (-90.0, 0.0, 0.0), **_ARMS_DOWN},
}

# ---------------------------------------------------------------------------------------
# Right hand (anny-hand.R): limits and key poses in each bone's local frame, degrees.
_HAND_LIMITS_DEG: dict[str, tuple[tuple[float, float], ...]] = {
    "root": ((0, 0), (0, 0), (0, 0)),
    "wrist": ((-10, 10), (-10, 10), (-10, 10)),
    "metacarpal": ((-5, 10), (-5, 5), (-5, 5)),
    "finger_1": ((-20, 90), (-10, 10), (-20, 20)),  # MCP
    "finger_2": ((-5, 110), (-5, 5), (-5, 5)),  # PIP
    "finger_3": ((-5, 80), (-5, 5), (-5, 5)),  # DIP
    "thumb_1": ((-30, 50), (-30, 30), (-40, 40)),  # CMC
    "thumb_2": ((-10, 60), (-10, 10), (-10, 10)),  # MCP
    "thumb_3": ((-15, 80), (-5, 5), (-5, 5)),  # IP
}
_FINGERS = (2, 3, 4, 5)


def _curl(fingers: Sequence[int], mcp: float, pip: float, dip: float,
          spread: float = 0.0) -> dict[str, Vec3]:
    pose = {}
    for finger in fingers:
        pose[f"finger{finger}-1.R"] = (mcp, 0.0, spread * (finger - 3.5))
        pose[f"finger{finger}-2.R"] = (pip, 0.0, 0.0)
        pose[f"finger{finger}-3.R"] = (dip, 0.0, 0.0)
    return pose


def _thumb(cmc: Vec3, mcp: float, ip: float) -> dict[str, Vec3]:
    return {"finger1-1.R": cmc, "finger1-2.R": (mcp, 0.0, 0.0), "finger1-3.R": (ip, 0.0, 0.0)}


HAND_KEY_POSES_DEG: dict[str, dict[str, Vec3]] = {
    "relaxed": {**_curl(_FINGERS, 15.0, 20.0, 10.0), **_thumb((5.0, 0.0, 0.0), 10.0, 10.0)},
    "open": {**_curl(_FINGERS, -10.0, 0.0, 0.0), **_thumb((-15.0, 0.0, 0.0), 0.0, -5.0)},
    "spread": {**_curl(_FINGERS, -10.0, 0.0, 0.0, spread=10.0),
               **_thumb((-25.0, 0.0, -20.0), 0.0, -10.0)},
    "fist": {**_curl(_FINGERS, 85.0, 100.0, 60.0), **_thumb((30.0, 0.0, 20.0), 40.0, 50.0)},
    "grasp": {**_curl(_FINGERS, 45.0, 60.0, 30.0), **_thumb((20.0, 0.0, 20.0), 20.0, 20.0)},
    "pinch": {**_curl((2,), 45.0, 45.0, 20.0), **_curl((3, 4, 5), 30.0, 40.0, 20.0),
              **_thumb((30.0, 0.0, 25.0), 20.0, 20.0)},
    "point": {**_curl((2,), -5.0, 0.0, 0.0), **_curl((3, 4, 5), 85.0, 100.0, 60.0),
              **_thumb((30.0, 0.0, 20.0), 40.0, 40.0)},
    "thumbs_up": {**_curl(_FINGERS, 85.0, 100.0, 60.0), **_thumb((-20.0, 0.0, 0.0), 0.0, 0.0)},
}


def _hand_limit_group(label: str) -> str:
    base = label.split(".")[0]
    if base.startswith("finger1-"):
        return f"thumb_{base[-1]}"
    if base.startswith("finger"):
        return f"finger_{base[-1]}"
    if base.startswith("metacarpal"):
        return "metacarpal"
    return base


def _body_limit_group(label: str) -> str:
    base = label.split(".")[0]
    if base.startswith("finger1-"):
        return "thumb"
    for group in ("finger", "toe", "spine", "neck", "metacarpal"):
        if base.startswith(group):
            return group
    return base


class _PosePrior:
    """Shared machinery: limits, key-pose library, blending, noise, clamping.

    Subclasses fill ``lower``/``upper`` (NB, 3) radians (via :meth:`_limits_from`, which also
    sets ``clamped`` (NB,) bool), ``key_pose_names``, ``key_poses`` (K, NB, 3) radians and
    ``minor`` (NB,) bool, and implement ``_random_poses``.
    """

    def __init__(self, bone_labels: Sequence[str] | None, default_labels: Sequence[str],
                 key_pose_prob: float, noise_deg: float, minor_noise_deg: float):
        self.bone_labels = tuple(default_labels if bone_labels is None else bone_labels)
        if not self.bone_labels or self.bone_labels[0] != "root":
            raise Pose2MeshError(
                f"{type(self).__name__}: expected an anny rig whose bone 0 is 'root'"
            )
        self.num_bones = len(self.bone_labels)
        self._index = {label: i for i, label in enumerate(self.bone_labels)}
        self.key_pose_prob = float(key_pose_prob)
        self.noise_deg = float(noise_deg)
        self.minor_noise_deg = float(minor_noise_deg)

    def _require(self, label: str) -> int:
        try:
            return self._index[label]
        except KeyError:
            raise Pose2MeshError(
                f"{type(self).__name__}: the rig has no bone '{label}' (is this an anny rig?)"
            ) from None

    def _limits_from(self, table: Mapping[str, tuple], group_of, unlimited: Sequence[str]):
        lower = torch.zeros(self.num_bones, 3)
        upper = torch.zeros(self.num_bones, 3)
        self.clamped = torch.ones(self.num_bones, dtype=torch.bool)
        for i, label in enumerate(self.bone_labels):
            if label in unlimited:
                lower[i], upper[i] = -math.pi, math.pi
                self.clamped[i] = False
                continue
            group = group_of(label)
            if group not in table:
                raise Pose2MeshError(f"{type(self).__name__}: no joint limits for bone '{label}'")
            limits = torch.tensor(table[group], dtype=torch.float32)
            lower[i], upper[i] = torch.deg2rad(limits[:, 0]), torch.deg2rad(limits[:, 1])
        return lower, upper

    def key_pose(self, name: str) -> torch.Tensor:
        """The key pose ``name`` as a (NB, 3) float32 rotation-vector tensor (radians)."""
        if name not in self.key_pose_names:
            raise Pose2MeshError(
                f"unknown key pose '{name}'; expected one of {list(self.key_pose_names)}"
            )
        return self.key_poses[self.key_pose_names.index(name)].clone()

    def clamp(self, pose_aa: torch.Tensor) -> torch.Tensor:
        """Clamp every rotation-vector component into the joint limits. (..., NB, 3) radians."""
        lower, upper = self.lower.to(pose_aa.device), self.upper.to(pose_aa.device)
        return torch.maximum(torch.minimum(pose_aa, upper), lower)

    def _noise_std(self, noise_deg: float) -> torch.Tensor:
        """(NB, 3) noise std in radians: ``noise_deg`` for major joints (at most a quarter of
        the joint's range), ``minor_noise_deg`` for fingers, toes, eyes; none for the root."""
        per_bone = torch.where(self.minor, self.minor_noise_deg, noise_deg)
        std = torch.minimum(torch.deg2rad(per_bone)[:, None].expand(-1, 3),
                            0.25 * (self.upper - self.lower))
        return std * self.clamped[:, None]

    def mirror(self, pose_aa: torch.Tensor) -> torch.Tensor:
        """Left-right reflection of poses (..., NB, 3); a one-sided rig (the hand) has none."""
        return pose_aa

    def _random_poses(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, batch_size: int, generator: torch.Generator | None = None, *,
               key_pose_prob: float | None = None, noise_deg: float | None = None,
               mirror_prob: float = 0.5) -> torch.Tensor:
        """Sample ``batch_size`` poses (B, NB, 3) float32 radians on the CPU.

        With probability ``key_pose_prob`` a pose is one key pose or (half of the time) a
        blend of two (rotation-vector lerp with a uniform weight; the root is taken from
        the dominant one) plus Gaussian per-joint noise of ``noise_deg`` degrees (at most a
        quarter of each joint's range; fingers, toes and eyes get their own small noise);
        otherwise it is drawn at random within the joint limits. Then (body only) it is
        mirrored left/right with probability ``mirror_prob``, and always clamped to the
        limits. The root stays as the key pose sets it (zero for random poses): the caller
        adds the global orientation.
        """
        p_key = self.key_pose_prob if key_pose_prob is None else float(key_pose_prob)
        noise = self.noise_deg if noise_deg is None else float(noise_deg)
        g = generator
        num_keys = len(self.key_pose_names)
        first = torch.randint(num_keys, (batch_size,), generator=g)
        second = torch.randint(num_keys, (batch_size,), generator=g)
        blend = torch.rand(batch_size, generator=g) * (torch.rand(batch_size, generator=g) < 0.5)
        keyed = torch.lerp(self.key_poses[first], self.key_poses[second], blend[:, None, None])
        # The root is not blended: it comes from the dominant key pose (no half-lying bodies).
        keyed[:, 0] = torch.where((blend < 0.5)[:, None], self.key_poses[first, 0],
                                  self.key_poses[second, 0])
        keyed = keyed + torch.randn(keyed.shape, generator=g) * self._noise_std(noise)
        random = self._random_poses(batch_size, g)
        use_key = (torch.rand(batch_size, generator=g) < p_key)[:, None, None]
        pose = torch.where(use_key, keyed, random)
        mirror = (torch.rand(batch_size, generator=g) < mirror_prob)[:, None, None]
        pose = torch.where(mirror, self.mirror(pose), pose)
        return self.clamp(pose).to(torch.float32)


class BodyPosePrior(_PosePrior):
    """Pose prior for anny's full-body rig (104 bones): anatomical limits and key poses.

    Args:
        bone_labels: the rig's bone labels in model order (default: anny's default rig).
        key_pose_prob: default chance that a sample starts from (blended) key poses.
        noise_deg: default std of the per-joint Gaussian noise added to key poses.
        finger_noise_deg: std of the noise on fingers, toes and eyes (kept near rest).
    """

    def __init__(self, bone_labels: Sequence[str] | None = None, *, key_pose_prob: float = 0.7,
                 noise_deg: float = 10.0, finger_noise_deg: float = 4.0):
        super().__init__(bone_labels, ANNY_BODY_BONES, key_pose_prob, noise_deg,
                         finger_noise_deg)
        self.lower, self.upper = self._limits_from(_BODY_LIMITS_DEG, _body_limit_group,
                                                   unlimited=("root",))
        # Mirroring: left-convention values of right bones are stored mirrored.
        twin = [self._twin(label) for label in self.bone_labels]
        self._twin_index = torch.tensor([self._require(label) for label in twin])
        self._is_right = torch.tensor([label.endswith(".R") for label in self.bone_labels])
        signs = torch.tensor(MIRROR_SIGNS)
        right_lower = torch.where(signs > 0, self.lower, -self.upper)
        right_upper = torch.where(signs > 0, self.upper, -self.lower)
        self.lower = torch.where(self._is_right[:, None], right_lower, self.lower)
        self.upper = torch.where(self._is_right[:, None], right_upper, self.upper)
        self.minor = torch.tensor(
            [_body_limit_group(label) in _BODY_MINOR_GROUPS for label in self.bone_labels]
        )
        self.key_pose_names = tuple(BODY_KEY_POSES_DEG)
        self.key_poses = torch.stack([self._build(BODY_KEY_POSES_DEG[name])
                                      for name in self.key_pose_names])

    @staticmethod
    def _twin(label: str) -> str:
        if label.endswith(".L"):
            return label[:-2] + ".R"
        if label.endswith(".R"):
            return label[:-2] + ".L"
        return label

    def _build(self, spec: Mapping[str, Vec3]) -> torch.Tensor:
        pose = torch.zeros(self.num_bones, 3)
        signs = torch.tensor(MIRROR_SIGNS)
        for name, value in spec.items():
            labels = [name] if name in self._index else [f"{name}.L", f"{name}.R"]
            for label in labels:
                rotvec = torch.deg2rad(torch.tensor(value, dtype=torch.float32))
                pose[self._require(label)] = rotvec * signs if label.endswith(".R") else rotvec
        return pose

    def mirror(self, pose_aa: torch.Tensor) -> torch.Tensor:
        """Left-right reflection of poses (..., NB, 3)."""
        return pose_aa[..., self._twin_index, :] * torch.tensor(MIRROR_SIGNS)

    def _random_poses(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        """Major joints uniform within their limits, pulled toward the standing pose by a
        random factor per sample (from standing to fully uniform); minor bones near rest;
        root zero."""
        uniform = torch.rand(batch_size, self.num_bones, 3, generator=generator)
        pose = self.lower + uniform * (self.upper - self.lower)
        pull = torch.rand(batch_size, 1, 1, generator=generator)
        pose = torch.lerp(self.key_pose("standing"), pose, pull)
        near_rest = torch.randn(pose.shape, generator=generator) * self._noise_std(0.0)
        pose = torch.where(self.minor[:, None], near_rest, pose)
        return pose * self.clamped[:, None]


class HandPosePrior(_PosePrior):
    """Pose prior for anny's right hand (``anny-hand.R``, 21 bones).

    Bones: root and wrist.R (both at the wrist: the hand's global orientation, left to the
    caller), the thumb finger1-1..3 (CMC, MCP, IP joints), and for the index..pinky
    metacarpal1..4 then finger2..5-1..3 (MCP, PIP, DIP joints). Finger flexion is about each
    bone's local +x (curl toward the palm) and spread about z (+z toward the little finger);
    for the thumb's CMC joint +x folds the thumb across the palm toward the index, +z
    opposes it into the palm and -z abducts it. Key poses are blended and noised like the
    body's (no mirroring); random poses draw one curl level per finger.

    Args:
        bone_labels: the rig's bone labels in model order (default: anny's right-hand rig).
        key_pose_prob: default chance that a sample starts from (blended) key poses.
        noise_deg: default std of the per-joint Gaussian noise added to key poses.
    """

    def __init__(self, bone_labels: Sequence[str] | None = None, *, key_pose_prob: float = 0.7,
                 noise_deg: float = 8.0):
        super().__init__(bone_labels, ANNY_HAND_BONES, key_pose_prob, noise_deg, noise_deg)
        for label in ANNY_HAND_BONES:
            self._require(label)
        self.lower, self.upper = self._limits_from(_HAND_LIMITS_DEG, _hand_limit_group,
                                                   unlimited=())
        self.minor = torch.zeros(self.num_bones, dtype=torch.bool)
        self.key_pose_names = tuple(HAND_KEY_POSES_DEG)
        self.key_poses = torch.stack([self._build(HAND_KEY_POSES_DEG[name])
                                      for name in self.key_pose_names])
        finger_of = torch.full((self.num_bones,), -1, dtype=torch.long)
        for i, label in enumerate(self.bone_labels):
            base = label.split(".")[0]
            if base.startswith("finger"):
                finger_of[i] = int(base[len("finger")]) - 1
        self._finger_of = finger_of

    def _build(self, spec: Mapping[str, Vec3]) -> torch.Tensor:
        pose = torch.zeros(self.num_bones, 3)
        for label, value in spec.items():
            pose[self._require(label)] = torch.deg2rad(torch.tensor(value, dtype=torch.float32))
        return pose

    def _random_poses(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        """Each finger curled to one random level shared by its joints (from slightly
        extended to fully flexed); the other axes uniform within half their limits."""
        curl = torch.rand(batch_size, 5, generator=generator) * 1.1 - 0.1
        level = curl[:, self._finger_of.clamp(min=0)]  # (B, NB)
        flexion = torch.where(level >= 0, level * self.upper[:, 0], -level * self.lower[:, 0])
        uniform = torch.rand(batch_size, self.num_bones, 3, generator=generator)
        pose = 0.5 * (self.lower + uniform * (self.upper - self.lower))
        pose[..., 0] = torch.where(self._finger_of >= 0, flexion, pose[..., 0])
        return pose


def years_to_age_param(years: torch.Tensor) -> torch.Tensor:
    """Morphological age (years) -> anny ``age`` phenotype value (piecewise linear)."""
    return _interp(years, AGE_YEARS_ANCHORS, AGE_PARAM_ANCHORS)


def age_param_to_years(age: torch.Tensor) -> torch.Tensor:
    """anny ``age`` phenotype value -> morphological age in years (piecewise linear)."""
    return _interp(age, AGE_PARAM_ANCHORS, AGE_YEARS_ANCHORS)


def _interp(x: torch.Tensor, xs: Sequence[float], ys: Sequence[float]) -> torch.Tensor:
    xs_t = torch.tensor(xs, dtype=x.dtype, device=x.device)
    ys_t = torch.tensor(ys, dtype=x.dtype, device=x.device)
    x = x.clamp(xs_t[0], xs_t[-1])
    i = torch.searchsorted(xs_t, x.contiguous(), right=True).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = xs_t[i - 1], xs_t[i], ys_t[i - 1], ys_t[i]
    return y0 + (x - x0) / (x1 - x0) * (y1 - y0)


def sample_phenotypes(n: int, generator: torch.Generator | None = None,
                      all_ages: bool = False) -> torch.Tensor:
    """Sample anny phenotypes (n, 6) float32 in [0, 1], columns ``PHENOTYPE_LABELS``.

    gender, muscle, weight and proportions are uniform on [0, 1]; height is uniform on
    ``HEIGHT_RANGE`` (realistic statures: anny's full range reaches 1.2-2.45 m, and its knee
    joints drift off the knees of the mesh at extreme heights). The age is uniform in
    morphological years -- ``ADULT_AGE_YEARS`` (18-80) by default, i.e. anny age
    0.77-0.89, or ``ALL_AGES_YEARS`` (1-90) with ``all_ages`` -- mapped to anny's age
    parameter through its calibration (module docstring).
    """
    low, high = ALL_AGES_YEARS if all_ages else ADULT_AGE_YEARS
    phenotype = torch.rand(n, len(PHENOTYPE_LABELS), generator=generator)
    years = low + (high - low) * torch.rand(n, generator=generator)
    phenotype[:, PHENOTYPE_LABELS.index("age")] = years_to_age_param(years)
    height = PHENOTYPE_LABELS.index("height")
    low, high = HEIGHT_RANGE
    phenotype[:, height] = low + (high - low) * phenotype[:, height]
    return phenotype
