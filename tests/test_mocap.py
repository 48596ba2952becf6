"""Motion capture: BVH parsing, retargeting onto anny, the pose library and its splits.

Every BVH here is written by the test (a CC_Base-named skeleton, y up, cm, facing +z, like
the converted CMU takes), never read from ``shared/``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pose2mesh.errors import Pose2MeshError
from pose2mesh.mocap.bvh import read_bvh
from pose2mesh.mocap.convert import convert_takes
from pose2mesh.mocap.library import load_pose_library, save_pose_library
from pose2mesh.mocap.retarget import (
    AnnyRig, Retargeter, SkeletonReference, _BODY_MAP, canonical_names, check_skeleton,
)
from pose2mesh.rotations import rotation_between

ROOT = Path(__file__).resolve().parents[1]

# (name, parent, offset cm) of a T-pose skeleton with zero rotations: y up, facing +z,
# subject's left = +x.
_SKELETON = [
    ("CC_Base_Hip", None, (0, 100, 0)),
    ("CC_Base_Waist", "CC_Base_Hip", (0, 8, 0)),
    ("CC_Base_Spine01", "CC_Base_Waist", (0, 10, 0)),
    ("CC_Base_Spine02", "CC_Base_Spine01", (0, 15, 1)),
    ("CC_Base_NeckTwist01", "CC_Base_Spine02", (0, 20, 0)),
    ("CC_Base_NeckTwist02", "CC_Base_NeckTwist01", (0, 5, 0)),
    ("CC_Base_Head", "CC_Base_NeckTwist02", (0, 6, 1)),
]
for _s, _x in (("L", 1), ("R", -1)):
    _SKELETON += [
        (f"CC_Base_{_s}_Thigh", "CC_Base_Hip", (10 * _x, -5, 0)),
        (f"CC_Base_{_s}_Calf", f"CC_Base_{_s}_Thigh", (0, -45, 0)),
        (f"CC_Base_{_s}_Foot", f"CC_Base_{_s}_Calf", (0, -45, -2)),
        (f"CC_Base_{_s}_ToeBase", f"CC_Base_{_s}_Foot", (0, -6, 14)),
        (f"CC_Base_{_s}_Clavicle", "CC_Base_Spine02", (3 * _x, 17, 0)),
        (f"CC_Base_{_s}_Upperarm", f"CC_Base_{_s}_Clavicle", (14 * _x, 0, 0)),
        (f"CC_Base_{_s}_Forearm", f"CC_Base_{_s}_Upperarm", (28 * _x, 0, 0)),
        (f"CC_Base_{_s}_Hand", f"CC_Base_{_s}_Forearm", (25 * _x, 0, 0)),
        (f"CC_Base_{_s}_Mid1", f"CC_Base_{_s}_Hand", (9 * _x, 0, 0)),
    ]


def write_bvh(path: Path, frames: np.ndarray, frame_time: float = 1 / 60,
              skeleton=_SKELETON) -> Path:
    """A BVH file of ``skeleton``; ``frames`` (T, 6 + 3 J) root position + ZYX Euler degrees."""
    children: dict = {}
    for name, parent, _ in skeleton:
        children.setdefault(parent, []).append(name)
    offsets = {name: offset for name, _, offset in skeleton}
    lines = ["HIERARCHY"]

    def block(name, depth):
        pad = "  " * depth
        keyword = "ROOT" if depth == 0 else "JOINT"
        lines.append(f"{pad}{keyword} {name}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {' '.join(str(float(v)) for v in offsets[name])}")
        channels = "Zrotation Yrotation Xrotation"
        if depth == 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {channels}")
        else:
            lines.append(f"{pad}  CHANNELS 3 {channels}")
        for child in children.get(name, []):
            block(child, depth + 1)
        if name not in children:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0 1 0", pad + "  }"])
        lines.append(pad + "}")

    block(skeleton[0][0], 0)
    lines += ["MOTION", f"Frames: {len(frames)}", f"Frame Time: {frame_time}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in frames]
    path.write_text("\n".join(lines) + "\n")
    return path


def joint_order(skeleton=_SKELETON) -> list[str]:
    """Joint names in the hierarchy order write_bvh emits."""
    children: dict = {}
    for name, parent, _ in skeleton:
        children.setdefault(parent, []).append(name)
    order: list[str] = []

    def visit(name):
        order.append(name)
        for child in children.get(name, []):
            visit(child)

    visit(skeleton[0][0])
    return order


def motion_frames(num_frames: int, seed: int = 0) -> np.ndarray:
    """(T, 6 + 3 (J - 1)) frames: root position and random rotations (up to 40 deg per axis)
    for every joint; frame 0 is the T-pose (all rotations zero)."""
    rng = np.random.default_rng(seed)
    frames = rng.uniform(-40, 40, (num_frames, 6 + 3 * (len(_SKELETON) - 1)))
    frames[:, :3] = 0.0
    frames[0, 3:] = 0.0
    return frames


@pytest.fixture(scope="module")
def anny_small():
    from pose2mesh.body_models.anny_model import build_anny_body

    return build_anny_body("notoes_collapse10pc")


@pytest.fixture(scope="module")
def rig(anny_small):
    return AnnyRig.from_body_model(anny_small)


def test_bvh_forward_kinematics_of_a_known_chain(tmp_path):
    frames = np.zeros((2, 6 + 3 * (len(_SKELETON) - 1)))
    frames[:, :3] = (5.0, 0.0, -3.0)  # the root's position channels add to its offset
    order = joint_order()
    thigh = order.index("CC_Base_L_Thigh")
    frames[1, 6 + 3 * (thigh - 1) + 2] = 90.0  # Xrotation of the left hip: +90 deg
    motion = read_bvh(write_bvh(tmp_path / "001_01.bvh", frames))
    assert motion.num_frames == 2 and motion.joint_names == tuple(order)
    positions = motion.world_positions()
    calf, foot = order.index("CC_Base_L_Calf"), order.index("CC_Base_L_Foot")
    # Frame 0: offsets add up.  Hip (5, 100, -3) + thigh (10, -5, 0) + calf (0, -45, 0).
    np.testing.assert_allclose(positions[0, calf], [15.0, 50.0, -3.0], atol=1e-9)
    # Frame 1: Rx(+90) maps the leg's -y onto -z: the calf moves 45 cm to -z at hip height.
    np.testing.assert_allclose(positions[1, calf], [15.0, 95.0, -48.0], atol=1e-9)
    # The foot's offset (0, -45, -2) turns into (0, 2, -45).
    np.testing.assert_allclose(positions[1, foot], [15.0, 97.0, -93.0], atol=1e-9)


@pytest.mark.parametrize("text, problem", [
    ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0\n", "not a valid BVH"),
    ("not a bvh at all", "not a valid BVH"),
])
def test_bvh_that_does_not_parse_is_one_line_naming_the_file(tmp_path, text, problem):
    path = tmp_path / "bad.bvh"
    path.write_text(text)
    with pytest.raises(Pose2MeshError, match=problem) as info:
        read_bvh(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bvh_without_frames_and_unknown_bones(tmp_path):
    empty = write_bvh(tmp_path / "empty.bvh", np.zeros((0, 6 + 3 * (len(_SKELETON) - 1))))
    with pytest.raises(Pose2MeshError, match="holds no frames"):
        read_bvh(empty)
    other = [("Root", None, (0, 0, 0)), ("Chest", "Root", (0, 10, 0))]
    odd = write_bvh(tmp_path / "odd.bvh", np.zeros((3, 9)), skeleton=other)
    with pytest.raises(Pose2MeshError, match=f"{odd}: unknown skeleton: no bones for"):
        check_skeleton(read_bvh(odd))


def test_rotation_between_turns_source_onto_target():
    generator = torch.Generator().manual_seed(1)
    a, b = torch.randn(20, 3, generator=generator, dtype=torch.float64), torch.randn(20, 3, generator=generator, dtype=torch.float64)
    a[0], b[0] = torch.tensor([1.0, 0, 0]), torch.tensor([-2.0, 0, 0])  # opposite
    a[1], b[1] = torch.tensor([0, 3.0, 0]), torch.tensor([0, 1.0, 0])  # parallel
    rotation = rotation_between(a, b)
    unit = torch.nn.functional.normalize
    torch.testing.assert_close((rotation @ unit(a, dim=-1)[..., None])[..., 0], unit(b, dim=-1))
    torch.testing.assert_close(rotation @ rotation.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(20, 3, 3))
    torch.testing.assert_close(rotation[1], torch.eye(3, dtype=torch.float64))
    # Hand-checked: x onto y is +90 deg about z.
    torch.testing.assert_close(rotation_between(torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0])),
                               torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]))


def test_retargeted_anny_bones_point_along_the_mocap_bones(tmp_path, rig, anny_small):
    """anny's forward kinematics on the retargeted pose_aa: every mapped bone (head to the
    next mapped head) points exactly where the mocap bone points, in anny's axes."""
    frames = motion_frames(6)
    motion = read_bvh(write_bvh(tmp_path / "002_01.bvh", frames))
    reference = SkeletonReference.from_frame(motion, 0)
    assert reference.is_t_pose()
    # Facing +z, y up in the file -> anny's x left, -y front, z up.
    np.testing.assert_allclose(reference.axes_to_anny(), [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-9)
    retarget = Retargeter(rig, reference)
    frame_index = np.arange(1, 6)
    pose_aa = torch.from_numpy(retarget(motion, frame_index)).float()
    heads = anny_small(pose_aa=pose_aa).joints_m.double().numpy()
    positions = motion.world_positions(frame_index)
    column = {name: i for i, name in enumerate(canonical_names(motion)) if name is not None}
    bone = {label: i for i, label in enumerate(rig.bone_labels)}
    checked = 0
    for joint, (anny_bone, direction) in _BODY_MAP.items():
        if direction is None:
            continue
        child_joint, child_bone = direction
        anny_dir = heads[:, bone[child_bone]] - heads[:, bone[anny_bone]]
        mocap_dir = (positions[:, column[child_joint]] - positions[:, column[joint]]) @ retarget.axes.T
        cosine = (anny_dir * mocap_dir).sum(-1) / np.linalg.norm(anny_dir, axis=-1) / np.linalg.norm(mocap_dir, axis=-1)
        assert cosine.min() > 1 - 1e-5, joint
        checked += 1
    assert checked == 19
    # The T-pose itself gives anny arms straight out sideways (it rests in an A-pose).
    tpose = torch.from_numpy(retarget(motion, np.array([0]))).float()
    heads = anny_small(pose_aa=tpose).joints_m[0]
    arm = heads[bone["wrist.L"]] - heads[bone["upperarm01.L"]]
    assert float(arm[0] / arm.norm()) > 0.999


def test_convert_drops_the_tpose_subsamples_and_splits_by_subject(tmp_path, rig):
    train = write_bvh(tmp_path / "001_01.bvh", motion_frames(61, seed=2))
    test = write_bvh(tmp_path / "006_03.bvh", motion_frames(31, seed=3), frame_time=1 / 120)
    bad = tmp_path / "005_01.bvh"
    bad.write_text("HIERARCHY\nROOT")
    library, report = convert_takes([train, test, bad], rig, fps=20.0)
    # 60 fps -> every 3rd frame of frames 1..60; 120 fps -> every 6th of frames 1..30.
    assert [count for _, count in report.converted] == [20, 5]
    assert len(report.failed) == 1 and str(bad) in report.failed[0][0]
    assert library.frame_index[:3].tolist() == [1, 4, 7]
    assert library.split("train").frames_per_subject() == {"001": 20}
    assert library.split("test").frames_per_subject() == {"006": 5}
    path = save_and_reload(tmp_path / "lib.npz", library)
    loaded = load_pose_library(path)
    np.testing.assert_allclose(loaded.pose_aa, library.pose_aa, atol=2e-3)  # stored as fp16
    assert loaded.bone_labels == library.bone_labels and loaded.take_names == ("001_01", "006_03")
    full = loaded.full_poses(rig.bone_labels)
    assert full.shape == (25, len(rig.bone_labels), 3)
    unmoved = [i for i, label in enumerate(rig.bone_labels) if label not in loaded.bone_labels]
    assert unmoved and full[:, unmoved].abs().max() == 0


def save_and_reload(path, library):
    save_pose_library(path, library)
    return path


def test_pose_library_errors_name_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "none.npz"
    with pytest.raises(Pose2MeshError, match="missing; regenerate it with: python tools/mocap_to_anny.py"):
        load_pose_library(missing)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(Pose2MeshError, match=f"{corrupt}.*regenerate"):
        load_pose_library(corrupt)


def test_tool_reports_failed_takes_and_writes_nothing(tmp_path):
    good = write_bvh(tmp_path / "001_01.bvh", motion_frames(7))
    bad = tmp_path / "001_02.bvh"
    bad.write_text("HIERARCHY\nROOT Hips {")
    out = tmp_path / "poses.npz"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mocap_to_anny.py"), str(good), str(bad), "--out", str(out)],
        capture_output=True, text=True,
    )
    assert result.returncode == 2 and not out.exists()
    assert f"failed: {bad}" in result.stderr and "1 take(s) failed" in result.stderr
    assert "1 of 2 takes converted, 1 failed" in result.stdout


def test_shipped_library_holds_both_splits():
    library = load_pose_library()
    train, test = library.split("train"), library.split("test")
    assert len(train) > 5000 and len(test) > 1000
    assert set(test.frames_per_subject()) == {"006"}
    assert "006" not in train.frames_per_subject()
