"""Cameras: projection, the closed-form weak-perspective fit, the 2D input normalisation."""
import math
import time

import cv2
import numpy as np
import pytest
import torch

from pose2mesh.camera import (
    fit_weak_perspective, process_bbox, project_perspective, project_weak_perspective,
    standardize_pose2d, weak_perspective_reprojection_error, weak_to_perspective_translation,
)
from pose2mesh.datasets.transforms import crop_points, process_bbox_batch, tight_bbox
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import get_joint_set
from reference_pipeline import apply_affine, crop_affine, get_bbox, normalize_pose2d

FIXTURE = "/work/shared/fixtures/h36m_joint_input_from_pose2mesh_release.npy"


def _pose(rng, num_joints=17):
    """Random 2D pose in pixels (a loose body-sized cloud)."""
    return rng.uniform([100, 50], [400, 600], size=(num_joints, 2))


# ----------------------------------------------------------------------- projection


def test_project_perspective_matches_formula():
    points = torch.tensor([[[0.1, -0.2, 2.0], [0.0, 0.0, 4.0]]])
    uv = project_perspective(points, (1000.0, 1100.0), (320.0, 240.0))
    assert uv.shape == (1, 2, 2)
    torch.testing.assert_close(uv[0, 0], torch.tensor([320 + 50.0, 240 - 110.0]))
    torch.testing.assert_close(uv[0, 1], torch.tensor([320.0, 240.0]))


def test_project_perspective_per_sample_intrinsics_and_scalar_focal():
    points = torch.rand(3, 5, 3) + torch.tensor([0.0, 0.0, 1.0])
    focal = torch.tensor([[500.0, 500.0], [800.0, 800.0], [1000.0, 1000.0]])
    princpt = torch.tensor([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    batched = project_perspective(points, focal, princpt)
    for b in range(3):
        single = project_perspective(points[b:b + 1], float(focal[b, 0]), princpt[b])
        torch.testing.assert_close(batched[b], single[0])


# ------------------------------------------------------------------ weak-perspective fit


def test_fit_recovers_known_camera_exactly_numpy():
    rng = np.random.default_rng(0)
    model = rng.normal(size=(17, 2)) * 0.3  # metres
    scale, tx, ty = 812.5, 301.0, -42.0
    target = scale * model + [tx, ty]
    weights = rng.uniform(0.2, 1.0, size=17)
    s, x, y = fit_weak_perspective(model, target, weights)
    assert isinstance(s, np.ndarray) and s.shape == ()
    np.testing.assert_allclose([s, x, y], [scale, tx, ty], rtol=1e-12, atol=1e-9)
    err = weak_perspective_reprojection_error(model, target, weights, s, x, y)
    assert isinstance(err, float) and err < 1e-9


def test_fit_ignores_zero_weight_joints_even_if_nan():
    rng = np.random.default_rng(1)
    model = rng.normal(size=(17, 2))
    target = 500.0 * model + [100.0, 200.0]
    weights = np.ones(17)
    target[[3, 7]] = [[1e6, -1e6], [np.nan, np.nan]]  # outliers / undetected joints
    weights[[3, 7]] = 0.0
    s, x, y = fit_weak_perspective(model, target, weights)
    np.testing.assert_allclose([s, x, y], [500.0, 100.0, 200.0], rtol=1e-12)
    err = weak_perspective_reprojection_error(model, target, weights, s, x, y)
    assert err < 1e-8


def test_fit_is_weighted_least_squares():
    """Against a generic solver of the same weighted problem on noisy data."""
    rng = np.random.default_rng(2)
    model = rng.normal(size=(17, 2))
    target = 300.0 * model + [50.0, 80.0] + rng.normal(scale=5.0, size=(17, 2))
    weights = rng.uniform(0.0, 1.0, size=17)
    sqrt_w = np.sqrt(np.repeat(weights, 2))
    design = np.zeros((34, 3))
    design[:, 0] = model.reshape(-1)
    design[0::2, 1] = 1.0
    design[1::2, 2] = 1.0
    expected = np.linalg.lstsq(design * sqrt_w[:, None], target.reshape(-1) * sqrt_w, rcond=None)[0]
    np.testing.assert_allclose(fit_weak_perspective(model, target, weights), expected, rtol=1e-10)


def test_fit_torch_batched_matches_per_sample():
    rng = np.random.default_rng(3)
    model = torch.tensor(rng.normal(size=(4, 17, 3)), dtype=torch.float32)  # 3D joints: x, y used
    truth = torch.tensor([[400.0, 10.0, 20.0], [900.0, -5.0, 300.0], [150.0, 0.0, 0.0],
                          [1200.0, 640.0, 480.0]])
    target = truth[:, None, :1] * model[..., :2] + truth[:, None, 1:]
    weights = torch.rand(4, 17)
    weights[0, :5] = 0
    s, x, y = fit_weak_perspective(model, target, weights)
    assert s.shape == (4,) and s.dtype == torch.float32
    torch.testing.assert_close(torch.stack([s, x, y], 1), truth, rtol=1e-4, atol=1e-2)
    err = weak_perspective_reprojection_error(model, target, weights, s, x, y)
    assert err.shape == (4,) and float(err.max()) < 1e-2
    for b in range(4):
        single = fit_weak_perspective(model[b].double().numpy(), target[b].double().numpy(),
                                      weights[b].double().numpy())
        np.testing.assert_allclose(single, truth[b].numpy(), rtol=1e-4, atol=1e-2)


def test_fit_needs_two_distinct_weighted_joints():
    model = np.random.default_rng(4).normal(size=(17, 2))
    with pytest.raises(Pose2MeshError, match="camera"):
        fit_weak_perspective(model, model, np.zeros(17))
    one = np.zeros(17)
    one[5] = 1.0
    with pytest.raises(Pose2MeshError, match="camera"):
        fit_weak_perspective(model, model, one)


def test_fit_timing_under_5ms():
    """Reported, not asserted (timing is machine dependent)."""
    pose = np.load(FIXTURE).astype(np.float64)
    model = (pose - pose.mean(0)) / 800.0
    weights = np.ones(17)
    fit_weak_perspective(model, pose, weights)
    times = []
    for _ in range(50):
        start = time.perf_counter()
        fit_weak_perspective(model, pose, weights)
        times.append(time.perf_counter() - start)
    print(f"fit_weak_perspective median {np.median(times) * 1e3:.3f} ms")


def test_weak_to_perspective_translation_reproduces_fit():
    rng = np.random.default_rng(5)
    joints_m = rng.normal(scale=0.3, size=(17, 3))
    scale, tx, ty = np.float64(600.0), np.float64(350.0), np.float64(260.0)
    focal, princpt = (1500.0, 1500.0), (320.0, 240.0)
    trans = weak_to_perspective_translation(scale, tx, ty, focal, princpt)
    assert trans.shape == (3,) and trans[2] == pytest.approx(2.5)
    weak = project_weak_perspective(joints_m, scale, tx, ty)
    flat = joints_m * [1.0, 1.0, 0.0]  # exact for a body in the plane z = 0
    uv = project_perspective(torch.tensor(flat + trans)[None], focal, princpt)[0].numpy()
    np.testing.assert_allclose(uv, weak, atol=1e-9)
    uv = project_perspective(torch.tensor(joints_m + trans)[None], focal, princpt)[0].numpy()
    depth_ratio = np.abs(joints_m[:, 2:]) / (trans[2] - np.abs(joints_m[:, 2:]))
    assert np.all(np.abs(uv - weak) <= depth_ratio * np.abs(uv - princpt) + 1e-9)


# ------------------------------------------------------------------ input normalisation


def test_bbox_and_process_bbox():
    joints = np.array([[10, 20], [110, 20], [60, 220]])
    np.testing.assert_array_equal(get_bbox(joints), [10, 20, 100, 200])
    np.testing.assert_array_equal(get_bbox(joints, valid=[True, True, False]), [10, 20, 100, 0])
    box = process_bbox(get_bbox(joints), aspect_ratio=0.75)
    w, h = 99.0, 199.0  # 1-pixel shrink
    np.testing.assert_allclose(box, [10 + w / 2 - 0.75 * h / 2, 20, 0.75 * h, h], rtol=1e-6)
    assert process_bbox([0, 0, 0.5, 10], 0.75) is None
    assert process_bbox([0, 0, 10, 0], 0.75) is None
    with pytest.raises(Pose2MeshError, match="no valid joint"):
        get_bbox(joints, valid=[False] * 3)
    # the loaders' batched versions give the same boxes and the same degenerate-box verdicts
    tight = tight_bbox(torch.tensor(joints, dtype=torch.float64)[None])
    np.testing.assert_array_equal(tight[0].numpy(), get_bbox(joints))
    batch, valid = process_bbox_batch(tight, 0.75)
    np.testing.assert_allclose(batch[0].numpy(), box, rtol=1e-6)
    _, valid_degenerate = process_bbox_batch(torch.tensor([[0, 0, 0.5, 10], [0, 0, 10, 0.0]]), 0.75)
    assert valid.tolist() == [True] and valid_degenerate.tolist() == [False, False]


def test_crop_affine_matches_three_point_construction():
    """The original builds the crop with cv2.getAffineTransform from three points."""
    center, (w, h), out_w, out_h = np.array([200.0, 300.0]), (150.0, 200.0), 288, 384
    for rot in (0.0, 30.0, -75.0):
        a = math.radians(rot)
        rotate = lambda p: np.array([p[0] * math.cos(a) - p[1] * math.sin(a),
                                     p[0] * math.sin(a) + p[1] * math.cos(a)])
        src = np.float32([center, center + rotate([0, 0.5 * h]), center + rotate([0.5 * w, 0])])
        dst = np.float32([[out_w / 2, out_h / 2], [out_w / 2, out_h], [out_w, out_h / 2]])
        affine = crop_affine(center, (w, h), rot, out_w, out_h)
        np.testing.assert_allclose(affine, cv2.getAffineTransform(src, dst), atol=1e-3)
        # the loaders' batched crop of the same (aspect-ratio) box is this affine map
        points = np.random.default_rng(int(rot) + 100).uniform(0, 500, (1, 9, 2))
        box = torch.tensor([[*(center - 0.5 * np.array([w, h])), w, h]])
        crop = crop_points(torch.tensor(points), box, torch.tensor([rot], dtype=torch.float64), out_w, out_h)
        np.testing.assert_allclose(crop[0].numpy(), apply_affine(points[0], affine), atol=1e-9)


def test_apply_affine_converts_ints_and_passes_extra_columns():
    affine = np.array([[0.5, 0.0, 1.0], [0.0, 0.5, 2.0]])
    out = apply_affine(np.array([[3, 5, 7]]), affine)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[2.5, 4.5, 7]])


def test_normalize_equals_standardize_without_rotation():
    rng = np.random.default_rng(6)
    poses = np.stack([_pose(rng) for _ in range(20)])
    batched = standardize_pose2d(torch.tensor(poses, dtype=torch.float32)).numpy()
    for pose, expected in zip(poses, batched):
        result = normalize_pose2d(pose, (384, 288), rot_deg=0)
        assert result.pose2d.dtype == np.float32 and result.pose2d.shape == (17, 2)
        np.testing.assert_allclose(result.pose2d, expected, atol=1e-5)
    np.testing.assert_allclose(batched.mean(1), 0.0, atol=1e-5)
    np.testing.assert_allclose(batched.std(1), 1.0, atol=1e-5)


def test_normalize_flip_and_rotation():
    rng = np.random.default_rng(7)
    pose = _pose(rng)
    human36 = get_joint_set("human36")
    flipped = normalize_pose2d(pose, flip=True, flip_pairs=human36.flip_pairs).pose2d
    plain = normalize_pose2d(pose).pose2d
    expected = plain[human36.flip_permutation()] * [-1.0, 1.0]
    np.testing.assert_allclose(flipped, expected, atol=1e-5)
    rotated = normalize_pose2d(pose, rot_deg=30.0)
    assert not np.allclose(rotated.pose2d, plain, atol=1e-2)  # rotation is not cancelled
    np.testing.assert_allclose(rotated.pose2d.std(0), 1.0, atol=1e-5)


def test_normalize_integer_fixture_and_degenerate_pose():
    pose = np.load(FIXTURE)
    assert pose.dtype.kind == "i"
    result = normalize_pose2d(pose)
    np.testing.assert_allclose(
        result.pose2d, standardize_pose2d(torch.tensor(pose)).numpy(), atol=1e-5)
    with pytest.raises(Pose2MeshError, match="pixel"):
        normalize_pose2d(pose / 1000.0)  # not pixel coordinates


def test_standardize_guards_zero_spread():
    xy = torch.zeros(2, 5, 2)
    xy[1, :, 0] = torch.arange(5.0)
    out = standardize_pose2d(xy)
    assert torch.isfinite(out).all()
    assert torch.all(out[:, :, 1] == 0)
