"""2D pose files (npy, COCO results JSON, OpenPose JSON) and missing-joint filling."""
import json

import numpy as np
import pytest

from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import add_pelvis_and_neck, get_joint_set
from pose2mesh.pose_input import fill_missing_joints, load_pose_file

FIXTURE = "/work/shared/fixtures/h36m_joint_input_from_pose2mesh_release.npy"
COCO17_TO_BODY25 = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
COCO17_TO_COCO18 = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)


def _coco17(rng, people=1):
    xy = rng.uniform(50, 500, size=(people, 17, 2))
    score = rng.uniform(0.3, 1.0, size=(people, 17, 1))
    return np.concatenate([xy, score], -1)


def _write_json(tmp_path, content, name="pose.json"):
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return path


# ---------------------------------------------------------------------------- npy


def test_npy_integer_fixture_becomes_float_with_unit_confidence():
    people = load_pose_file(FIXTURE, "human36")
    assert len(people) == 1
    person = people[0]
    assert person.shape == (17, 3) and person.dtype == np.float32
    np.testing.assert_array_equal(person[:, :2], np.load(FIXTURE))
    assert np.all(person[:, 2] == 1.0)


@pytest.mark.parametrize("name", ["human36", "coco", "smpl", "mano"])
def test_npy_round_trip_each_joint_set(tmp_path, name):
    rng = np.random.default_rng(0)
    count = get_joint_set(name).num_joints
    poses = np.concatenate([rng.uniform(0, 500, (2, count, 2)), rng.uniform(0, 1, (2, count, 1))],
                           -1).astype(np.float32)
    np.save(tmp_path / "p.npy", poses)
    people = load_pose_file(tmp_path / "p.npy", name)
    assert len(people) == 2
    np.testing.assert_array_equal(np.stack(people), poses)
    np.save(tmp_path / "one.npy", poses[0, :, :2])
    np.testing.assert_array_equal(load_pose_file(tmp_path / "one.npy", name)[0][:, :2],
                                  poses[0, :, :2])


def test_npy_coco17_gets_pelvis_and_neck(tmp_path):
    coco17 = _coco17(np.random.default_rng(1))[0]
    np.save(tmp_path / "c.npy", coco17)
    person = load_pose_file(tmp_path / "c.npy", "coco")[0]
    np.testing.assert_allclose(person, add_pelvis_and_neck(coco17), rtol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda: np.zeros((16, 2)), "expects 17 joints, got 16"),
    (lambda: np.zeros((17, 4)), r"shape \(J, 2\|3\)"),
    (lambda: np.zeros((2, 3, 17, 2)), r"shape \(J, 2\|3\)"),
    (lambda: np.array(["a"] * 34).reshape(17, 2), "numeric"),
    (lambda: np.zeros((0, 17, 2)), "no people"),
])
def test_npy_errors(tmp_path, make, message):
    path = tmp_path / "bad.npy"
    np.save(path, make())
    with pytest.raises(Pose2MeshError, match=message) as info:
        load_pose_file(path, "human36")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_npy_nan_inf(tmp_path, value):
    pose = np.load(FIXTURE).astype(np.float64)
    pose[4, 1] = value
    np.save(tmp_path / "nan.npy", pose)
    with pytest.raises(Pose2MeshError, match="NaN or infinite.*joint 4") as info:
        load_pose_file(tmp_path / "nan.npy", "human36")
    assert "nan.npy" in str(info.value)


def test_file_errors(tmp_path):
    with pytest.raises(Pose2MeshError, match="not found") as info:
        load_pose_file(tmp_path / "missing.npy", "human36")
    assert "missing.npy" in str(info.value)
    (tmp_path / "pose.txt").write_text("1 2")
    with pytest.raises(Pose2MeshError, match="unknown pose file format"):
        load_pose_file(tmp_path / "pose.txt", "human36")
    (tmp_path / "garbage.npy").write_bytes(b"not numpy")
    with pytest.raises(Pose2MeshError, match="garbage.npy: not a NumPy .npy file"):
        load_pose_file(tmp_path / "garbage.npy", "human36")
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.raises(Pose2MeshError, match="garbage.json: cannot read as JSON"):
        load_pose_file(tmp_path / "garbage.json", "coco")
    with pytest.raises(Pose2MeshError, match="unknown joint set"):
        load_pose_file(FIXTURE, "h36m")


# ---------------------------------------------------------------------------- JSON


def test_coco_results_round_trip(tmp_path):
    coco17 = _coco17(np.random.default_rng(2), people=3)
    results = [{"image_id": 7, "category_id": 1, "keypoints": p.reshape(-1).tolist(),
                "score": 0.9} for p in coco17]
    people = load_pose_file(_write_json(tmp_path, results), "coco")
    assert len(people) == 3
    np.testing.assert_allclose(np.stack(people), add_pelvis_and_neck(coco17), rtol=1e-6)
    single = load_pose_file(_write_json(tmp_path, results[1], "one.json"), "coco")
    np.testing.assert_allclose(single[0], add_pelvis_and_neck(coco17[1]), rtol=1e-6)


def test_coco_results_several_images(tmp_path):
    coco17 = _coco17(np.random.default_rng(3), people=3)
    results = [{"image_id": i, "category_id": 1, "keypoints": p.reshape(-1).tolist()}
               for i, p in zip((1, 2, 2), coco17)]
    path = _write_json(tmp_path, results)
    with pytest.raises(Pose2MeshError, match="2 images.*image_id"):
        load_pose_file(path, "coco")
    assert len(load_pose_file(path, "coco", image_id=2)) == 2
    with pytest.raises(Pose2MeshError, match="no people for image_id 5"):
        load_pose_file(path, "coco", image_id=5)


def test_coco_missing_parent_makes_added_joint_missing(tmp_path):
    coco17 = _coco17(np.random.default_rng(4))[0]
    coco17[11] = [0.0, 0.0, 0.0]  # undetected left hip
    results = [{"image_id": 1, "category_id": 1, "keypoints": coco17.reshape(-1).tolist()}]
    person = load_pose_file(_write_json(tmp_path, results), "coco")[0]
    assert person[17, 2] == 0.0  # Pelvis unknown: its (x, y) is a meaningless average
    assert person[18, 2] == pytest.approx(0.5 * (coco17[5, 2] + coco17[6, 2]))


@pytest.mark.parametrize("layout, mapping", [(25, COCO17_TO_BODY25), (18, COCO17_TO_COCO18)])
def test_openpose_round_trip(tmp_path, layout, mapping):
    rng = np.random.default_rng(5)
    coco17 = _coco17(rng, people=2)
    people_json = []
    for person in coco17:
        openpose = np.zeros((layout, 3))
        openpose[list(mapping)] = person
        people_json.append({"person_id": [-1], "pose_keypoints_2d": openpose.reshape(-1).tolist()})
    people_json.append({"pose_keypoints_2d": [0.0] * layout * 3})  # an empty OpenPose slot
    path = _write_json(tmp_path, {"version": 1.3, "people": people_json})
    people = load_pose_file(path, "coco")
    assert len(people) == 2
    np.testing.assert_allclose(np.stack(people), add_pelvis_and_neck(coco17), rtol=1e-6)


def test_openpose_hand_for_mano(tmp_path):
    hand = np.random.default_rng(6).uniform(0, 300, size=(21, 3))
    path = _write_json(tmp_path, {"people": [{"pose_keypoints_2d": [0.0] * 75,
                                              "hand_right_keypoints_2d": hand.reshape(-1).tolist()}]})
    np.testing.assert_allclose(load_pose_file(path, "mano")[0], hand, rtol=1e-6)


@pytest.mark.parametrize("content, joint_set, message", [
    ({"people": []}, "coco", "no people"),
    ([], "coco", "no people"),
    ({"people": [{"pose_keypoints_2d": [0.0] * 75}]}, "coco", "no people"),
    ({"people": [{"pose_keypoints_2d": [1.0] * 60}]}, "coco", "20 OpenPose keypoints"),
    ({"people": [{"face": []}]}, "coco", "no 'pose_keypoints_2d'"),
    ({"people": [{"pose_keypoints_2d": [1.0] * 75}]}, "human36", "use the 'coco' joint set"),
    ([{"keypoints": [1.0] * 50}], "coco", "expected 51"),
    ([{"keypoints": [1.0] * 50 + [float("nan")]}], "coco", "NaN"),
    ([{"keypoints": "abc"}], "coco", "flat list of numbers"),
    ({"annotations": []}, "coco", "unknown JSON pose format"),
])
def test_json_errors(tmp_path, content, joint_set, message):
    path = _write_json(tmp_path, content, "bad.json")
    with pytest.raises(Pose2MeshError, match=message) as info:
        load_pose_file(path, joint_set)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------- missing joints


def _symmetric_h36m():
    """A frontal, left/right-symmetric human36 pose about the line x = 200."""
    right = {1: (180, 300), 2: (175, 400), 3: (172, 500), 14: (160, 150), 15: (140, 220),
             16: (130, 290)}
    centre = {0: 300, 7: 230, 8: 150, 9: 120, 10: 80}
    pose = np.zeros((17, 3))
    pose[:, 2] = 1.0
    for joint, y in centre.items():
        pose[joint, :2] = (200, y)
    for (r, l) in get_joint_set("human36").flip_pairs:
        pose[r, :2] = right[r]
        pose[l, :2] = (400 - right[r][0], right[r][1])
    return pose


def test_fill_mirrors_flip_partner():
    pose = _symmetric_h36m()
    broken = pose.copy()
    broken[[4, 13], :] = 0.0  # L_Hip and L_Wrist undetected
    filled = fill_missing_joints(broken, "human36")
    np.testing.assert_allclose(filled[:, :2], pose[:, :2], atol=1e-4)
    np.testing.assert_array_equal(filled[:, 2], broken[:, 2])  # still flagged missing


def test_fill_mirror_follows_a_tilted_body():
    pose = _symmetric_h36m()
    angle = np.radians(35.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pose[:, :2] = (pose[:, :2] - 200.0) @ rotation.T + 300.0
    broken = pose.copy()
    broken[6, 2] = 0.0
    broken[6, :2] = 0.0
    np.testing.assert_allclose(fill_missing_joints(broken, "human36")[6, :2], pose[6, :2],
                               atol=1e-3)


def test_fill_centre_joints_and_chains():
    pose = _symmetric_h36m()
    broken = pose.copy()
    broken[[0, 8], 2] = 0.0  # Pelvis and Neck: midpoints of hips / shoulders
    broken[[12, 13, 15, 16], 2] = 0.0  # both forearms and hands: no partner to mirror
    filled = fill_missing_joints(broken, "human36")
    np.testing.assert_allclose(filled[0, :2], 0.5 * (pose[1, :2] + pose[4, :2]))
    np.testing.assert_allclose(filled[8, :2], 0.5 * (pose[11, :2] + pose[14, :2]))
    np.testing.assert_allclose(filled[[12, 13], :2], pose[[11, 11], :2])  # on the shoulder
    assert np.isfinite(filled).all()


def test_fill_hand_uses_skeleton_neighbours():
    hand = np.random.default_rng(7).uniform(0, 100, size=(21, 3))
    hand[:, 2] = 1.0
    broken = hand.copy()
    broken[[7, 8], 2] = 0.0  # index tip joints
    filled = fill_missing_joints(broken, "mano")
    np.testing.assert_allclose(filled[[7, 8], :2], hand[[6, 6], :2])
    np.testing.assert_allclose(filled[:7], hand[:7])


def test_fill_requires_a_detected_joint():
    with pytest.raises(Pose2MeshError, match="no joint"):
        fill_missing_joints(np.zeros((17, 3)), "human36")
