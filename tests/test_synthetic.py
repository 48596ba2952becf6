"""The synthetic anny dataset: splits, determinism, geometry of the prepared batch."""
import numpy as np
import pytest
import torch

from pose2mesh.camera import project_perspective, standardize_pose2d
from pose2mesh.config import load_config
from pose2mesh.datasets.synthetic import Synthetic, look_at_rotation
from pose2mesh.errors import Pose2MeshError


def hand_cfg(*opts):
    return load_config(None, [
        "MODEL.body_model", "anny_hand", "DATASET.input_joint_set", "mano",
        "DATASET.target_joint_set", "mano", "SYNTHETIC.train_size", "96",
        "SYNTHETIC.test_size", "48", *opts,
    ])


def body_cfg(*opts):
    return load_config(None, [
        "DATASET.input_joint_set", "human36", "DATASET.target_joint_set", "human36",
        "SYNTHETIC.train_size", "32", "SYNTHETIC.test_size", "16", *opts,
    ])


def collate(dataset, count):
    return torch.utils.data.default_collate([dataset[i] for i in range(count)])


def test_look_at_rotation_is_proper_and_points_at_target():
    azimuth = torch.tensor([0.0, 1.0, 2.5])
    elevation = torch.tensor([0.0, 0.3, -0.2])
    roll = torch.tensor([0.0, 0.1, -0.1])
    rotation, direction = look_at_rotation(azimuth, elevation, roll)
    eye = torch.eye(3).expand(3, 3, 3)
    torch.testing.assert_close(rotation @ rotation.transpose(1, 2), eye, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(3), atol=1e-6, rtol=0)
    # The optical axis (third row) points from the camera to the target: -direction.
    torch.testing.assert_close(rotation[:, 2], -direction, atol=1e-6, rtol=0)
    # Without roll, world up (+z) maps to image up (negative camera y).
    up_in_camera = rotation[0] @ torch.tensor([0.0, 0.0, 1.0])
    torch.testing.assert_close(up_in_camera, torch.tensor([0.0, -1.0, 0.0]), atol=1e-6, rtol=0)


def test_splits_are_fixed_disjoint_and_train_changes_per_epoch(anny_hand):
    cfg = hand_cfg()
    test_a = Synthetic(cfg, "test", anny_hand.bone_labels)
    test_b = Synthetic(cfg, "test", anny_hand.bone_labels)
    assert len(test_a) == 48
    np.testing.assert_array_equal(test_a[5]["pose_aa"], test_b[5]["pose_aa"])
    train = Synthetic(cfg, "train", anny_hand.bone_labels)
    assert len(train) == 96
    test_rows = {test_a[i]["pose_aa"].tobytes() for i in range(len(test_a))}
    assert not any(train[i]["pose_aa"].tobytes() in test_rows for i in range(len(train)))
    epoch0 = train[0]["pose_aa"].copy()
    train.set_epoch(1)
    assert not np.array_equal(train[0]["pose_aa"], epoch0)
    train.set_epoch(0)
    np.testing.assert_array_equal(train[0]["pose_aa"], epoch0)
    # The seed defines the training stream.
    other = Synthetic(hand_cfg("SEED", "7"), "train", anny_hand.bone_labels)
    assert not np.array_equal(other[0]["pose_aa"], epoch0)


def test_prepared_batch_is_consistent_with_the_camera(anny_hand):
    dataset = Synthetic(hand_cfg(), "test", anny_hand.bone_labels)
    batch = collate(dataset, 8)
    out = dataset.prepare_batch(batch, anny_hand)
    assert out["pose2d"].shape == (8, 21, 2)
    assert out["mesh_m"].shape == (8, anny_hand.num_vertices, 3)
    assert out["mesh_valid"].shape == (8, 1, 1)
    for key, value in out.items():
        assert value.dtype == torch.float32, key
        assert torch.isfinite(value).all(), key
    # Root-relative targets.
    assert out["lift_pose3d_mm"][:, 0].abs().max() < 1e-3
    # The camera looks at the root, so the root sits on the optical axis at the sampled
    # distance: re-projecting the lifted joints reproduces the 2D input exactly.
    root_cam_m = torch.zeros(8, 1, 3)
    root_cam_m[:, 0, 2] = batch["cam_distance_m"]
    joints_cam_m = out["lift_pose3d_mm"] / 1000.0 + root_cam_m
    focal = batch["focal_px"][:, None].expand(-1, 2)
    uv = project_perspective(joints_cam_m, focal, batch["princpt_px"])
    torch.testing.assert_close(standardize_pose2d(uv), out["pose2d"], atol=1e-4, rtol=0)
    # Regressed joints of the mesh equal the target joints (same camera frame).
    regressed_mm = anny_hand.regress_joints(out["mesh_m"], "mano") * 1000.0
    torch.testing.assert_close(regressed_mm - regressed_mm[:, :1], out["reg_pose3d_mm"], atol=1e-2, rtol=0)
    # Hands are 10-25 cm across.
    extent_m = (out["mesh_m"].amax(1) - out["mesh_m"].amin(1)).amax(-1)
    assert ((extent_m > 0.1) & (extent_m < 0.3)).all()


def test_camera_turned_body_equals_the_world_body_seen_by_the_camera(anny_body):
    """prepare_batch turns the body's root instead of moving the camera: its targets must
    equal the world-frame body transformed by the explicit look-at camera."""
    dataset = Synthetic(body_cfg("SYNTHETIC.roll_deg", "[-20, 20]"), "test", anny_body.bone_labels)
    batch = collate(dataset, 6)
    out = dataset.prepare_batch(batch, anny_body)
    world_m = anny_body(pose_aa=batch["pose_aa"], phenotype=batch["phenotype"]).vertices_m
    joints_m = anny_body.regress_joints(world_m, "human36")
    rotation, direction = look_at_rotation(
        batch["cam_azimuth_rad"], batch["cam_elevation_rad"], batch["cam_roll_rad"])
    root_m = joints_m[:, dataset.target_joint_set.root]
    centre_m = root_m + batch["cam_distance_m"][:, None] * direction

    def to_camera(points_m):
        return torch.einsum("bij,bnj->bni", rotation, points_m - centre_m[:, None])

    mesh_cam_m, joints_cam_m = to_camera(world_m), to_camera(joints_m)
    root_cam_m = joints_cam_m[:, dataset.target_joint_set.root]
    torch.testing.assert_close(out["mesh_m"], mesh_cam_m - root_cam_m[:, None], atol=2e-5, rtol=0)
    torch.testing.assert_close(out["reg_pose3d_mm"], (joints_cam_m - root_cam_m[:, None]) * 1000.0,
                               atol=2e-2, rtol=0)
    focal = batch["focal_px"][:, None].expand(-1, 2)
    uv = project_perspective(joints_cam_m, focal, batch["princpt_px"])
    torch.testing.assert_close(out["pose2d"], standardize_pose2d(uv), atol=1e-4, rtol=0)


def test_noise_is_seeded_and_applied_only_without_gt_input(anny_hand):
    noisy_cfg = hand_cfg("DATASET.use_gt_input", "False", "SYNTHETIC.noise_2d", "gaussian")
    noisy = Synthetic(noisy_cfg, "test", anny_hand.bone_labels)
    clean = Synthetic(hand_cfg(), "test", anny_hand.bone_labels)
    assert "noise_px" in noisy[0] and "noise_px" not in clean[0]
    np.testing.assert_array_equal(noisy[3]["noise_px"], Synthetic(noisy_cfg, "test", anny_hand.bone_labels)[3]["noise_px"])
    out_noisy = noisy.prepare_batch(collate(noisy, 8), anny_hand)
    out_clean = clean.prepare_batch(collate(clean, 8), anny_hand)
    torch.testing.assert_close(out_noisy["lift_pose3d_mm"], out_clean["lift_pose3d_mm"])
    assert (out_noisy["pose2d"] - out_clean["pose2d"]).abs().mean() > 1e-3


def test_body_batch_and_posenet_flip(anny_body):
    cfg = body_cfg("MODEL.name", "posenet", "AUG.flip", "True")
    dataset = Synthetic(cfg, "train", anny_body.bone_labels)
    batch = collate(dataset, 16)
    assert 0 < batch["flip"].sum() < 16
    out = dataset.prepare_batch(batch, anny_body)
    assert "mesh_m" not in out
    unflipped = dict(batch, flip=torch.zeros(16))
    plain = dataset.prepare_batch(unflipped, anny_body)
    order = torch.as_tensor(dataset.joint_set.flip_permutation())
    flipped = batch["flip"] > 0.5
    torch.testing.assert_close(out["pose2d"][flipped], plain["pose2d"][flipped][:, order] * torch.tensor([-1.0, 1.0]))
    torch.testing.assert_close(out["lift_pose3d_mm"][~flipped], plain["lift_pose3d_mm"][~flipped])
    # Bodies stand roughly 1.4-2.1 m tall (y is down in the camera frame).
    human = Synthetic(body_cfg(), "test", anny_body.bone_labels)
    meshes = human.prepare_batch(collate(human, 8), anny_body)["mesh_m"]
    assert meshes.shape == (8, anny_body.num_vertices, 3)
    extent = (meshes.amax(1) - meshes.amin(1)).amax(-1)
    assert ((extent > 0.8) & (extent < 2.6)).all()


@pytest.mark.parametrize(
    "opts, message",
    [
        (["MODEL.body_model", "smpl"], "needs MODEL.body_model 'anny' or 'anny_hand'"),
        (["MODEL.body_model", "anny_hand"], "does not fit body model"),
        (["AUG.flip", "True"], "AUG.flip is only supported"),
    ],
)
def test_bad_settings_give_one_line_errors(opts, message):
    cfg = load_config(None, ["DATASET.input_joint_set", "human36", *opts])
    with pytest.raises(Pose2MeshError, match=message):
        Synthetic(cfg, "train", bone_labels=["root"])


def tiny_pose_library(path, bone_labels):
    """A 2-subject library: 6 training frames (subject 001) and 4 test frames (subject 006)
    that bend the left elbow and twist the spine by distinct angles."""
    from pose2mesh.mocap.library import PoseLibrary, save_pose_library

    moving = ["root", "lowerarm01.L", "spine03"]
    angles = np.linspace(0.1, 1.0, 10)
    pose_aa = np.zeros((10, 3, 3))
    pose_aa[:, 1, 0] = angles
    pose_aa[:, 2, 1] = -angles / 2
    pose_aa[:, 0, 2] = angles  # a heading, mirrored to -angles
    library = PoseLibrary(
        pose_aa=pose_aa, bone_labels=tuple(moving),
        take_index=np.array([0] * 6 + [1] * 4), frame_index=np.arange(10),
        take_names=("001_01", "006_01"), take_subjects=("001", "006"), fps=20.0,
    )
    save_pose_library(path, library)
    return library


def test_mocap_pose_source_draws_training_frames_mirrored(tmp_path, anny_body):
    library = tiny_pose_library(tmp_path / "poses.npz", anny_body.bone_labels)
    cfg = body_cfg("SYNTHETIC.pose_source", "mocap", "SYNTHETIC.mocap_path", str(tmp_path / "poses.npz"),
                   "SYNTHETIC.train_size", "200")
    dataset = Synthetic(cfg, "train", bone_labels=list(anny_body.bone_labels))
    poses = torch.from_numpy(dataset._table["pose_aa"])
    train_rows = library.split("train").full_poses(anny_body.bone_labels)
    mirrored_rows = dataset.prior.mirror(train_rows)
    candidates = torch.cat([train_rows, mirrored_rows])  # (12, NB, 3)
    distance = (poses[:, None] - candidates[None]).abs().amax(dim=(2, 3))
    nearest = distance.min(dim=1)
    assert nearest.values.max() < 1e-3  # every pose is a training frame or its mirror
    assert (nearest.indices >= 6).float().mean().item() == pytest.approx(0.5, abs=0.15)
    assert len(set(nearest.indices.tolist())) == 12  # both sides of every frame occur
    # The mirror maps the heading (root z) to its negative and swaps the elbow to the right.
    right_elbow = anny_body.bone_labels.index("lowerarm01.R")
    assert mirrored_rows[:, right_elbow, 0].abs().max() > 0.5


def test_real_motion_test_split_is_every_held_out_frame_once(tmp_path, anny_body):
    library = tiny_pose_library(tmp_path / "poses.npz", anny_body.bone_labels)
    cfg = body_cfg("SYNTHETIC.test_split", "real_motion", "SYNTHETIC.mocap_path", str(tmp_path / "poses.npz"))
    dataset = Synthetic(cfg, "test", bone_labels=list(anny_body.bone_labels))
    assert len(dataset) == 4
    expected = library.split("test").full_poses(anny_body.bone_labels)
    torch.testing.assert_close(torch.from_numpy(dataset._table["pose_aa"]), expected, atol=1e-3, rtol=0)
    batch = dataset.prepare_batch(collate(dataset, 4), anny_body)
    assert torch.isfinite(batch["pose2d"]).all() and batch["reg_pose3d_mm"].shape == (4, 17, 3)


def test_pose_source_changes_training_only_and_is_validated(tmp_path, anny_body):
    tiny_pose_library(tmp_path / "poses.npz", anny_body.bone_labels)
    labels = list(anny_body.bone_labels)
    common = ("SYNTHETIC.mocap_path", str(tmp_path / "poses.npz"))
    prior_test = Synthetic(body_cfg("SYNTHETIC.pose_source", "prior", *common), "test", labels)
    mix_test = Synthetic(body_cfg("SYNTHETIC.pose_source", "mix", *common), "test", labels)
    for key in prior_test._table:
        np.testing.assert_array_equal(prior_test._table[key], mix_test._table[key])
    mix_train = Synthetic(body_cfg("SYNTHETIC.pose_source", "mix", "SYNTHETIC.train_size", "400",
                                   "SYNTHETIC.mocap_ratio", "0.25", *common), "train", labels)
    elbow = labels.index("lowerarm01.L")
    poses = torch.from_numpy(mix_train._table["pose_aa"])
    spine = labels.index("spine03")
    # Library frames have |spine03 y| = |elbow x| / 2 (either side); prior poses do not.
    elbow_x = torch.maximum(poses[:, elbow, 0].abs(), poses[:, labels.index("lowerarm01.R"), 0].abs())
    is_mocap = ((poses[:, spine, 1].abs() - elbow_x / 2).abs() < 1e-3) & (elbow_x > 0.09)
    assert is_mocap.float().mean().item() == pytest.approx(0.25, abs=0.08)
    with pytest.raises(Pose2MeshError, match="SYNTHETIC.pose_source = 'mocapp' is invalid: expected one of"):
        Synthetic(body_cfg("SYNTHETIC.pose_source", "mocapp"), "train", labels)
    with pytest.raises(Pose2MeshError, match=r"SYNTHETIC.mocap_ratio = 1.5 is invalid: expected in \[0.0, 1.0\]"):
        Synthetic(body_cfg("SYNTHETIC.mocap_ratio", "1.5"), "train", labels)
    with pytest.raises(Pose2MeshError, match="mocap pose library .* is missing"):
        Synthetic(body_cfg("SYNTHETIC.pose_source", "mocap", "SYNTHETIC.mocap_path",
                           str(tmp_path / "nothing.npz")), "train", labels)


def test_mirrored_pose_gives_the_mirrored_body(anny_body):
    """The library's augmentation: mirror(pose) poses the reflection (x -> -x) of the body."""
    from pose2mesh.mocap.library import load_pose_library
    from pose2mesh.datasets.pose_prior import BodyPosePrior

    labels = list(anny_body.bone_labels)
    poses = load_pose_library().split("test").full_poses(labels, np.array([0, 400, 900]))
    mirrored = BodyPosePrior(labels).mirror(poses)
    phenotype = torch.full((3, 6), 0.5)
    vertices = anny_body(pose_aa=poses, phenotype=phenotype).vertices_m
    mirrored_vertices = anny_body(pose_aa=mirrored, phenotype=phenotype).vertices_m
    reflected = vertices * torch.tensor([-1.0, 1.0, 1.0])
    # Compare as point sets (the mesh is symmetric up to vertex order): nearest neighbours.
    gap = torch.cdist(mirrored_vertices[:, ::7], reflected).min(dim=-1).values
    assert gap.max().item() < 0.02
    assert (vertices - mirrored_vertices).abs().max().item() > 0.1
