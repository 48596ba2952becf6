"""Real-benchmark loaders on the official-format fixtures of tests/fixtures/.

Checks each loader against quantities recomputed here from the fixture files (camera-frame
joints ``R X + t``, perspective / weak-perspective projections, the standardized 2D input, the
root-rotation composition ``mesh(composed params) = R_cam mesh_world + t_cam``), the filters and
their logged counts, the error messages for missing and malformed files, the error models, the
dataset mix, and one training step plus the full evaluation of every dataset through the engine.
"""

from __future__ import annotations

import json
import logging
import math
import shutil

import numpy as np
import pytest
import torch
from pose2mesh.body_models import build_body_model
from pose2mesh.config import load_config
from pose2mesh.datasets.mixed import MixedDataset
from pose2mesh.datasets.noise import (
    COCO_FLIP_PARTNER,
    COCO_KEYPOINT_SIGMAS,
    H36M_ERROR_STATS,
    _type_probabilities,
    h36m_gaussian_offsets_px,
    synthesize_coco_pose,
)
from pose2mesh.datasets.registry import build_dataset
from pose2mesh.datasets.smpl_targets import world_to_camera_mesh
from pose2mesh.datasets.transforms import (
    crop_points,
    crop_to_pose2d,
    flip_crop_points,
    process_bbox_batch,
    tight_bbox,
)
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import COCO
from pose2mesh.rotations import compose_root_rotation
from reference_pipeline import normalize_pose2d
from roma import rotmat_to_rotvec as matrix_to_axis_angle
from roma import rotvec_to_rotmat as axis_angle_to_matrix
from scipy.spatial.transform import Rotation
from torch.utils.data import default_collate

H36M_COCO = ["DATASET.input_joint_set", "coco", "DATASET.target_joint_set", "human36"]
H36M_H36M = ["DATASET.input_joint_set", "human36", "DATASET.target_joint_set", "human36"]
SMPL_SMPL = ["DATASET.input_joint_set", "smpl", "DATASET.target_joint_set", "smpl"]
MANO_MANO = ["MODEL.body_model", "mano", "DATASET.input_joint_set", "mano", "DATASET.target_joint_set", "mano"]


# ----------------------------------------------------------------------------- helpers
def bench_cfg(fx, *opts, data_dir=None):
    base = [
        "MODEL.body_model",
        "smpl",
        "DATA_DIR",
        str(data_dir or fx.data_dir),
        "SMPL_DIR",
        str(fx.smpl_dir),
        "MANO_DIR",
        str(fx.mano_dir),
        "DEVICE",
        "cpu",
        "DATASET.workers",
        "0",
    ]
    return load_config(None, base + [str(o) for o in opts])


@pytest.fixture(scope="module")
def fx(benchmark_fixtures):
    return benchmark_fixtures


@pytest.fixture(scope="module")
def smpl(fx):
    return build_body_model("smpl", smpl_dir=fx.smpl_dir, data_dir=fx.data_dir)


@pytest.fixture(scope="module")
def mano(fx):
    return build_body_model("mano", mano_dir=fx.mano_dir)


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def dataset_log():
    logger = logging.getLogger("pose2mesh.datasets")
    handler, old_level = ListHandler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def full_batch(dataset):
    return default_collate([dataset[i] for i in range(len(dataset))])


def prepared(dataset, body_model):
    return dataset.prepare_batch(full_batch(dataset), body_model)


def standardize(xy):
    xy = np.asarray(xy, dtype=np.float64)
    return (xy - xy.mean(0)) / xy.std(0)


def project(points, focal, princpt):
    points = np.asarray(points, dtype=np.float64)
    return points[:, :2] / points[:, 2:3] * np.asarray(focal) + np.asarray(princpt)


def smpl_world(model, pose, shape, trans=None):
    params = {
        "pose_aa": torch.as_tensor(pose, dtype=torch.float32).reshape(1, -1, 3),
        "shape": torch.as_tensor(shape, dtype=torch.float32)[None],
    }
    if trans is not None:
        params["transl_m"] = torch.as_tensor(trans, dtype=torch.float32)[None]
    output = model(**params)
    return output.vertices_m[0].double().numpy(), output.joints_m[0].double().numpy()


def regress(model, vertices, joint_set):
    return model.joint_regressor(joint_set).double().numpy() @ vertices


# ----------------------------------------------------------------------------- loading
LOADERS = [
    ("Human36M", "train", H36M_H36M, "smpl"),
    ("Human36M", "test", H36M_H36M, "smpl"),
    ("PW3D", "test", H36M_COCO, "smpl"),
    ("COCO", "train", H36M_COCO, "smpl"),
    ("MuCo", "train", H36M_COCO, "smpl"),
    ("AMASS", "train", H36M_COCO, "smpl"),
    ("SURREAL", "train", SMPL_SMPL, "smpl"),
    ("SURREAL", "test", SMPL_SMPL, "smpl"),
    ("FreiHAND", "train", MANO_MANO, "mano"),
    ("FreiHAND", "test", MANO_MANO, "mano"),
]


@pytest.mark.parametrize("name,split,opts,body", LOADERS, ids=[f"{n}-{s}" for n, s, _, _ in LOADERS])
def test_loader_yields_the_sample_contract(fx, smpl, mano, dataset_log, name, split, opts, body):
    body_model = smpl if body == "smpl" else mano
    cfg = bench_cfg(fx, *opts, "DATASET.use_gt_input", "False")
    dataset = build_dataset(cfg, name, split, body_model)
    expected = fx.manifest[name]
    size = expected.get(split, expected.get("train_pose2mesh"))
    assert len(dataset) == size
    for reason, count in expected.get(f"skipped_{split}", {}).items():
        assert dataset.skipped[reason] == count
        assert any("skipped" in m and reason in m for m in dataset_log), dataset_log

    item = dataset[0]
    assert all(isinstance(v, (np.ndarray, np.generic)) for v in item.values())
    batch = prepared(dataset, body_model)
    joints, targets = dataset.joint_set.num_joints, dataset.target_joint_set.num_joints
    assert batch["pose2d"].shape == (size, joints, 2) and batch["pose2d"].dtype == torch.float32
    assert batch["lift_pose3d_mm"].shape == (size, joints, 3)
    assert batch["lift_pose3d_valid"].shape == (size, joints, 1)
    assert batch["reg_pose3d_mm"].shape == (size, targets, 3)
    assert batch["reg_pose3d_valid"].shape == (size, targets, 1)
    assert batch["mesh_m"].shape == (size, body_model.num_vertices, 3)
    assert batch["mesh_valid"].shape == (size, 1, 1)
    for key in ("pose2d", "lift_pose3d_mm", "reg_pose3d_mm", "mesh_m"):
        assert torch.isfinite(batch[key]).all(), key
    # standardized input: zero mean, unit population std per axis
    torch.testing.assert_close(batch["pose2d"].mean(1), torch.zeros(size, 2), atol=1e-5, rtol=0)
    # root-relative lifted joints
    torch.testing.assert_close(batch["lift_pose3d_mm"][:, dataset.joint_set.root], torch.zeros(size, 3))


# ----------------------------------------------------------------------------- Human36M
def _h36m_sources(fx, dataset):
    """Per sample (dataset order): world joints, camera and SMPL fit read from the JSON files."""
    ann = fx.data_dir / "Human36M" / "annotations"
    by_name = {}
    for subject in (9, 11):
        data = json.loads((ann / f"Human36M_subject{subject}_data.json").read_text())
        cams = json.loads((ann / f"Human36M_subject{subject}_camera.json").read_text())
        joints = json.loads((ann / f"Human36M_subject{subject}_joint_3d.json").read_text())
        fits = json.loads((ann / f"Human36M_subject{subject}_smpl_param.json").read_text())
        for image in data["images"]:
            act, frame = str(image["action_idx"]), str(image["frame_idx"])
            by_name[image["file_name"].split("/")[-1]] = (
                np.array(joints[act]["1"][frame]),
                cams[str(image["cam_idx"])],
                fits.get(act, {}).get("1", {}).get(frame),
            )
    return [by_name[name] for name in dataset.image_names]


def test_human36m_camera_joints_projection_and_root_composition(fx, smpl):
    cfg = bench_cfg(fx, *H36M_H36M, "DATASET.use_gt_input", "True")
    dataset = build_dataset(cfg, "Human36M", "test", smpl)
    batch = full_batch(dataset)
    out = dataset.prepare_batch(batch, smpl)
    sources = _h36m_sources(fx, dataset)
    zero_root_seen = False
    for i, (world_mm, cam, fit) in enumerate(sources):
        rotation, t_mm = np.array(cam["R"]), np.array(cam["t"])
        cam_mm = world_mm @ rotation.T + t_mm
        np.testing.assert_allclose(out["lift_pose3d_mm"][i].numpy(), cam_mm - cam_mm[0], atol=2e-3)
        np.testing.assert_allclose(out["reg_pose3d_mm"][i].numpy(), cam_mm - cam_mm[0], atol=2e-3)
        np.testing.assert_allclose(
            out["pose2d"][i].numpy(), standardize(project(cam_mm, cam["f"], cam["c"])), atol=1e-4
        )
        # mesh from the composed parameters == R_cam (world mesh) + t_cam
        shape = np.zeros(10) if np.abs(fit["shape"]).max() > 3 else np.array(fit["shape"])
        world_m, _ = smpl_world(smpl, fit["pose"], shape, fit["trans"])
        expected_m = world_m @ rotation.T + t_mm / 1000.0
        composed_m, _ = world_to_camera_mesh(
            smpl,
            batch["pose_aa"][i : i + 1],
            torch.tensor(shape, dtype=torch.float32)[None],
            batch["cam_R"][i : i + 1],
            batch["cam_t_mm"][i : i + 1] / 1000.0,
            batch["trans_world_m"][i : i + 1],
        )
        np.testing.assert_allclose(composed_m[0].double().numpy(), expected_m, atol=2e-5)
        pelvis = regress(smpl, expected_m, "human36")[0]
        np.testing.assert_allclose(out["mesh_m"][i].numpy(), expected_m - pelvis, atol=2e-5)
        zero_root_seen |= not np.any(np.array(fit["pose"][:3]))
    assert zero_root_seen, "the fixture has a sample with a zero root rotation"


def test_human36m_fitting_filter_counts_and_logs(fx, smpl, dataset_log):
    manifest = fx.manifest["Human36M"]
    cfg = bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "True")
    dataset = build_dataset(cfg, "Human36M", "train", smpl)
    dataset.set_epoch(1)
    out = prepared(dataset, smpl)
    bad = manifest["bad_fit_train"]
    assert int((out["mesh_valid"] == 0).sum()) == bad
    assert int((out["lift_pose3d_valid"][:, 0] == 0).sum()) == bad  # coco input: lift masked too
    assert bool((out["reg_pose3d_valid"] == 1).all())
    report = dataset.end_epoch(1)
    (reason,) = [r for r in report if r.startswith("fitting check")]
    assert report[reason] == (bad, len(dataset))
    assert any(f"masked {bad} of {len(dataset)} samples in epoch 1" in m and "25 mm" in m for m in dataset_log)


def test_human36m_per_action_evaluation(fx, smpl):
    cfg = bench_cfg(fx, *H36M_H36M, "DATASET.use_gt_input", "True")
    dataset = build_dataset(cfg, "Human36M", "test", smpl)
    out = prepared(dataset, smpl)
    noise = 0.01 * torch.randn(out["mesh_m"].shape, generator=torch.Generator().manual_seed(0))
    errors = dataset.evaluate_batch(
        {"mesh_m": out["mesh_m"] + noise, "pose3d_mm": out["lift_pose3d_mm"]}, out, smpl
    )
    assert set(errors) == {"MPJPE", "PA-MPJPE", "SMPL-MPJPE", "MPVPE", "PA-MPVPE"}
    assert all(v.shape == (len(dataset),) for v in errors.values())
    assert 0 < float(errors["PA-MPVPE"].mean()) < float(errors["MPVPE"].mean())  # a real PA-MPVPE
    summary = dataset.summarize({k: v.numpy() for k, v in errors.items()})
    assert summary["MPJPE/Directions"] > 0 and summary["MPJPE/Discussion"] > 0
    actions = dataset.table["action"]
    expected = errors["MPJPE"].numpy()[actions == 1].mean()
    assert summary["MPJPE/Discussion"] == pytest.approx(expected, rel=1e-6)


def test_human36m_test_detections_are_matched_by_image_name(fx, smpl):
    cfg = bench_cfg(fx, *H36M_H36M, "DATASET.use_gt_input", "False")
    dataset = build_dataset(cfg, "Human36M", "test", smpl)
    detections = json.loads((fx.data_dir / "Human36M" / "absnet_output_on_testset.json").read_text())
    out = prepared(dataset, smpl)
    for i, name in enumerate(dataset.image_names):
        np.testing.assert_allclose(out["pose2d"][i].numpy(), standardize(detections[name]), atol=1e-4)
    with pytest.raises(Pose2MeshError, match="use_gt_input True"):
        build_dataset(bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "False"), "Human36M", "test", smpl)


# ----------------------------------------------------------------------------- 3DPW
def test_pw3d_detections_gendered_meshes_and_evaluation(fx, smpl):
    data = json.loads((fx.data_dir / "PW3D" / "data" / "3DPW_latest_test.json").read_text())
    detections = {
        d["annotation_id"]: np.array(d["keypoints"])
        for d in json.loads((fx.data_dir / "PW3D" / "data" / "darkpose_3dpw_testset_output.json").read_text())
    }
    images = {image["id"]: image for image in data["images"]}
    kept = [a for a in data["annotations"] if a["bbox"][2] >= 1]  # the 0.5 px wide box is dropped
    annotations = sorted(kept, key=lambda a: (a["person_id"], images[a["image_id"]]["file_name"]))
    dataset = build_dataset(bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "False"), "PW3D", "test", smpl)
    assert len(dataset) == len(kept) == len(data["annotations"]) - 1
    assert dataset.skipped == {"invalid bounding box": 1}
    out = prepared(dataset, smpl)
    layers = {
        g: build_body_model("smpl", smpl_dir=fx.smpl_dir, data_dir=fx.data_dir, gender=g)
        for g in ("male", "female")
    }
    for i, annotation in enumerate(annotations):
        det = detections[annotation["id"]][:, :2]
        det19 = np.concatenate([det, det[[11, 12]].mean(0, keepdims=True), det[[5, 6]].mean(0, keepdims=True)])
        np.testing.assert_allclose(out["pose2d"][i].numpy(), standardize(det19), atol=1e-4)
        fit = annotation["smpl_param"]
        vertices_m, _ = smpl_world(layers[fit["gender"]], fit["pose"], fit["shape"], fit["trans"])
        neutral_m, _ = smpl_world(smpl, fit["pose"], fit["shape"], fit["trans"])
        pelvis = regress(smpl, vertices_m, "human36")[0]
        np.testing.assert_allclose(out["mesh_m"][i].numpy(), vertices_m - pelvis, atol=2e-5)
        assert np.abs(neutral_m - vertices_m).max() > 1e-3  # the gendered layer was used
        coco_mm = regress(smpl, vertices_m * 1000, "coco")
        np.testing.assert_allclose(out["lift_pose3d_mm"][i].numpy(), coco_mm - coco_mm[COCO.root], atol=2e-3)
    errors = dataset.evaluate_batch(
        {"mesh_m": out["mesh_m"] * 1.05, "pose3d_mm": out["lift_pose3d_mm"]}, out, smpl
    )
    assert float(errors["MPVPE"].mean()) > 0 and float(errors["PA-MPVPE"].mean()) < 1e-2  # scale is aligned away


# ----------------------------------------------------------------------------- COCO, MuCo, AMASS
def test_coco_weak_perspective_and_fitting_filter(fx, smpl, dataset_log):
    dataset = build_dataset(bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "True"), "COCO", "train", smpl)
    fits = json.loads((fx.data_dir / "COCO" / "annotations" / "coco_smplify_train.json").read_text())
    annotations = json.loads(
        (fx.data_dir / "COCO" / "annotations" / "person_keypoints_train2017.json").read_text()
    )["annotations"]
    kept = [
        a
        for a in annotations
        if not a["iscrowd"] and a["num_keypoints"] > 0 and min(a["bbox"][2:]) >= 1 and str(a["id"]) in fits
    ]
    assert len(kept) == len(dataset) and dataset.skipped["invalid bounding box"] == 1
    assert any(np.abs(fits[str(a["id"])]["smpl_param"]["shape"]).max() > 3 for a in kept)  # clamped below
    out = prepared(dataset, smpl)
    for i, annotation in enumerate(kept):
        fit = fits[str(annotation["id"])]
        shape = np.array(fit["smpl_param"]["shape"])
        vertices_m, _ = smpl_world(
            smpl, fit["smpl_param"]["pose"], np.zeros(10) if np.abs(shape).max() > 3 else shape
        )
        coco_mm = regress(smpl, vertices_m * 1000, "coco")
        uv = coco_mm[:, :2] / 1000.0 * np.broadcast_to(fit["cam_param"]["s"], (2,)) + np.array(
            fit["cam_param"]["t"]
        )
        np.testing.assert_allclose(out["pose2d"][i].numpy(), standardize(uv), atol=1e-4)
    bad = fx.manifest["COCO"]["bad_fit_train"]
    masked = out["mesh_valid"].flatten() == 0
    assert int(masked.sum()) == bad
    assert bool((out["lift_pose3d_valid"][masked] == 0).all()) and bool(
        (out["reg_pose3d_valid"][masked] == 0).all()
    )
    dataset.end_epoch(1)
    assert any(f"masked {bad} of {len(dataset)}" in m and "3 px" in m for m in dataset_log)


def test_muco_closest_person_and_fitting_filter(fx, smpl, dataset_log):
    dataset = build_dataset(bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "True"), "MuCo", "train", smpl)
    data = json.loads((fx.data_dir / "MuCo" / "data" / "MuCo-3DHP.json").read_text())
    by_image = {}
    for annotation in data["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    closest = [min(people, key=lambda a: a["keypoints_cam"][14][2]) for _, people in sorted(by_image.items())]
    depths = {round(float(np.array(c["keypoints_cam"])[14, 2]), 3) for c in closest}
    assert {round(float(x), 3) for x in dataset.table["keypoints_cam_mm"][:, 14, 2]} <= depths
    out = prepared(dataset, smpl)
    bad = fx.manifest["MuCo"]["bad_fit_train"]
    assert int((out["mesh_valid"] == 0).sum()) == bad
    dataset.end_epoch(3)
    assert any(f"masked {bad} of {len(dataset)} samples in epoch 3" in m for m in dataset_log)


def test_muco_follows_the_image_order_with_trans_clamp_and_camera(fx, smpl, data_copy):
    """Samples follow the images of MuCo-3DHP.json in file order (pycocotools' order in the
    original), one per image: its closest person, dropped for a degenerate box, a missing fit
    or a NaN in it. The mesh is the neutral layer with the fit's translation and the shape
    clamp, projected with the image's f, c."""
    path = data_copy / "MuCo" / "data" / "MuCo-3DHP.json"
    data = json.loads(path.read_text())
    data["images"] = data["images"][::-1]
    path.write_text(json.dumps(data))
    fits = json.loads((data_copy / "MuCo" / "data" / "smpl_param.json").read_text())
    cfg = bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "True", data_dir=data_copy)
    dataset = build_dataset(cfg, "MuCo", "train", smpl)
    expected = []
    for image in data["images"]:
        people = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        closest = min(people, key=lambda a: a["keypoints_cam"][14][2])
        fit = fits.get(str(closest["id"]))
        if min(closest["bbox"][2:]) < 1 or fit is None or np.isnan(np.concatenate([*fit.values()])).any():
            continue
        expected.append((image, closest, fit))
    assert [e[1]["id"] for e in expected] != sorted(e[1]["id"] for e in expected)  # the order is tested
    assert dataset.skipped == {"invalid bounding box": 1, "no SMPL fit": 1, "NaN in the SMPL fit": 1}
    assert len(dataset) == len(expected)
    out = prepared(dataset, smpl)
    clamped_seen = False
    for i, (image, closest, fit) in enumerate(expected):
        np.testing.assert_allclose(dataset.table["keypoints_cam_mm"][i], closest["keypoints_cam"], atol=1e-3)
        shape = np.array(fit["shape"])
        clamped_seen |= np.abs(shape).max() > 3
        vertices_m, _ = smpl_world(
            smpl, fit["pose"], np.zeros(10) if np.abs(shape).max() > 3 else shape, fit["trans"]
        )
        coco_mm = regress(smpl, vertices_m * 1000, "coco")
        np.testing.assert_allclose(
            out["pose2d"][i].numpy(), standardize(project(coco_mm, image["f"], image["c"])), atol=1e-4
        )
        np.testing.assert_allclose(out["lift_pose3d_mm"][i].numpy(), coco_mm - coco_mm[COCO.root], atol=2e-3)
        pelvis = regress(smpl, vertices_m, "human36")[0]
        np.testing.assert_allclose(out["mesh_m"][i].numpy(), vertices_m - pelvis, atol=2e-5)
    assert clamped_seen


def test_amass_debug_mode_reads_one_sequence_folder_per_sub_dataset(fx, smpl):
    """As the original's debug mode: every trial of the first sequence folder of each
    sub-dataset (CMU/01 holds two), none of the later folders (CMU/02)."""
    cfg = bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "True", "DATASET.debug_max_samples", "1000")
    dataset = build_dataset(cfg, "AMASS", "train", smpl)
    assert len(dataset) == fx.manifest["AMASS"]["train_debug_pose2mesh"]
    full = build_dataset(bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "True"), "AMASS", "train", smpl)
    assert len(full) == fx.manifest["AMASS"]["train_pose2mesh"] > len(dataset)
    np.testing.assert_array_equal(dataset.table["pose_aa"], full.table["pose_aa"][: len(dataset) // 4])


def test_amass_cameras_hands_and_selection(fx, smpl):
    dataset = build_dataset(bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "True"), "AMASS", "train", smpl)
    posenet = build_dataset(bench_cfg(fx, *H36M_COCO, "MODEL.name", "posenet"), "AMASS", "train", smpl)
    assert len(posenet) == fx.manifest["AMASS"]["train_posenet"]
    assert not dataset.table["pose_aa"][:, 22:].any()  # SMPL hands are not SMPL-H fingers (10.16)
    with np.load(fx.data_dir / "AMASS" / "data" / "CMU" / "01" / "01_01_poses.npz") as first:
        betas = first["betas"][:10]
    assert np.abs(betas).max() > 3  # AMASS has no shape clamp: the file's betas are used as they are
    np.testing.assert_allclose(dataset.table["shape"][0], betas, rtol=1e-6)
    out = prepared(dataset, smpl)
    from pose2mesh.datasets.amass import CAMERA_ROTATIONS, CAMERA_T_M, FOCAL_PX, PRINCPT_PX

    for i in (0, 1, 6, 11):
        frame, camera = divmod(i, 4)
        vertices, joints = smpl_world(smpl, dataset.table["pose_aa"][frame], dataset.table["shape"][frame])
        rotation = np.array(CAMERA_ROTATIONS[camera])
        cam_m = (vertices - joints[0]) @ rotation.T + joints[0] + np.array(CAMERA_T_M)  # about J0, then + t
        coco_mm = regress(smpl, cam_m * 1000, "coco")
        np.testing.assert_allclose(out["lift_pose3d_mm"][i].numpy(), coco_mm - coco_mm[COCO.root], atol=3e-3)
        np.testing.assert_allclose(
            out["pose2d"][i].numpy(), standardize(project(coco_mm, FOCAL_PX, PRINCPT_PX)), atol=1e-4
        )


# ----------------------------------------------------------------------------- SURREAL, FreiHAND
def test_surreal_detections_by_image_id_and_fk_lift(fx, smpl):
    dataset = build_dataset(bench_cfg(fx, *SMPL_SMPL, "DATASET.use_gt_input", "False"), "SURREAL", "test", smpl)
    data = json.loads((fx.data_dir / "SURREAL" / "data" / "val.json").read_text())
    detections = {
        d["image_id"]: np.array(d["keypoints"])[:, :2]
        for d in json.loads((fx.data_dir / "SURREAL" / "data" / "hrnet_output_on_valset.json").read_text())
    }
    # The image whose box is 0.5 px wide is dropped, as the original's process_bbox check does.
    valid = {a["image_id"] for a in data["annotations"] if a["bbox"][2] >= 1 and a["bbox"][3] >= 1}
    assert dataset.image_ids == sorted(valid) and len(valid) == len(data["images"]) - 1
    out = prepared(dataset, smpl)
    first = {}
    for annotation in data["annotations"]:
        first.setdefault(annotation["image_id"], annotation)
    layers = {
        g: build_body_model("smpl", smpl_dir=fx.smpl_dir, data_dir=fx.data_dir, gender=g)
        for g in ("male", "female")
    }
    for i, image_id in enumerate(dataset.image_ids):
        np.testing.assert_allclose(out["pose2d"][i].numpy(), standardize(detections[image_id]), atol=1e-4)
        fit = first[image_id]["smpl_param"]
        _, fk = smpl_world(
            layers[{"m": "male", "f": "female"}.get(fit["gender"], fit["gender"])], fit["pose"], fit["shape"],
            fit["trans"]
        )
        np.testing.assert_allclose(out["lift_pose3d_mm"][i].numpy(), (fk - fk[0]) * 1000, atol=2e-3)
    errors = dataset.evaluate_batch({"mesh_m": out["mesh_m"], "pose3d_mm": out["lift_pose3d_mm"]}, out, smpl)
    assert float(errors["MPJPE"].max()) < 1e-2 and float(errors["MPVPE"].max()) < 1e-2


def test_freihand_mano_composition_and_prediction_export(fx, mano, tmp_path):
    cfg = bench_cfg(fx, *MANO_MANO)
    train = build_dataset(cfg, "FreiHAND", "train", mano)
    batch = full_batch(train)
    out = train.prepare_batch(batch, mano)
    for i in range(len(train)):
        pose, rotation = batch["pose_aa"][i].double().numpy(), batch["cam_R"][i].double().numpy()
        world_v, world_j = smpl_world(mano, pose, batch["shape"][i], np.zeros(3))
        # root composition about the wrist: layer(R-composed pose) = R (world - J0) + J0
        composed = pose.copy()
        composed[0] = Rotation.from_matrix(rotation @ Rotation.from_rotvec(pose[0]).as_matrix()).as_rotvec()
        cam_v, cam_j = smpl_world(mano, composed, batch["shape"][i], np.zeros(3))
        np.testing.assert_allclose(cam_v, (world_v - world_j[0]) @ rotation.T + world_j[0], atol=2e-5)
        np.testing.assert_allclose(out["lift_pose3d_mm"][i].numpy(), (cam_j - cam_j[0]) * 1000, atol=2e-3)
    detections = {
        d["image_id"]: np.array(d["keypoints"])[:, :2]
        for d in json.loads((fx.data_dir / "FreiHAND" / "data" / "hrnet_output_on_trainset.json").read_text())
    }
    for i, image_id in enumerate(train.image_ids):
        np.testing.assert_allclose(out["pose2d"][i].numpy(), standardize(detections[image_id]), atol=1e-4)

    test = build_dataset(cfg, "FreiHAND", "test", mano)
    test_out = prepared(test, mano)
    assert bool((test_out["mesh_valid"] == 0).all()) and bool((test_out["lift_pose3d_valid"] == 0).all())
    mesh = torch.randn(len(test), mano.num_vertices, 3) * 0.05
    errors = test.evaluate_batch({"mesh_m": mesh, "pose3d_mm": test_out["lift_pose3d_mm"]}, test_out, mano)
    assert all(bool(torch.isnan(v).all()) for v in errors.values())  # no public ground truth
    path = test.export_predictions(tmp_path)
    joints, verts = json.loads(path.read_text())
    assert np.array(joints).shape == (len(test), 21, 3) and np.array(verts).shape == (
        len(test),
        mano.num_vertices,
        3,
    )
    np.testing.assert_allclose(np.array(verts), mesh.numpy() * 1000, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(
        np.array(joints), mano.regress_joints(mesh * 1000, "mano").numpy(), rtol=1e-5, atol=1e-3
    )


# ----------------------------------------------------------------------------- bad input
MISSING = [
    ("Human36M", "train", H36M_H36M, "Human36M/annotations/Human36M_subject6_camera.json"),
    ("Human36M", "test", H36M_H36M, "Human36M/absnet_output_on_testset.json"),
    ("PW3D", "test", H36M_COCO, "PW3D/data/darkpose_3dpw_testset_output.json"),
    ("COCO", "train", H36M_COCO, "COCO/annotations/coco_smplify_train.json"),
    ("MuCo", "train", H36M_COCO, "MuCo/data/MuCo-3DHP.json"),
    ("AMASS", "train", H36M_COCO, "AMASS/data"),
    ("SURREAL", "train", SMPL_SMPL, "SURREAL/data/hrnet_output_on_trainset.json"),
    ("FreiHAND", "test", MANO_MANO, "FreiHAND/data/freihand_eval_data.json"),
]


@pytest.fixture
def data_copy(fx, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(fx.data_dir, target)
    return target


@pytest.mark.parametrize("name,split,opts,relative", MISSING, ids=[m[3].split("/")[-1] for m in MISSING])
def test_missing_file_names_path_and_readme(fx, smpl, mano, data_copy, name, split, opts, relative):
    target = data_copy / relative
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    cfg = bench_cfg(fx, *opts, "DATASET.use_gt_input", "False", data_dir=data_copy)
    with pytest.raises(Pose2MeshError) as info:
        build_dataset(cfg, name, split, mano if name == "FreiHAND" else smpl)
    message = str(info.value)
    assert str(target) in message and f"data/{name}/README.md" in message and "\n" not in message


def test_malformed_json_names_file_and_key(fx, smpl, data_copy):
    cfg = bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "False", data_dir=data_copy)
    path = data_copy / "PW3D" / "data" / "3DPW_latest_test.json"
    content = json.loads(path.read_text())
    del content["images"][0]["cam_param"]
    path.write_text(json.dumps(content))
    with pytest.raises(Pose2MeshError, match="cam_param") as info:
        build_dataset(cfg, "PW3D", "test", smpl)
    assert str(path) in str(info.value)

    path.write_text('{"images": [1, 2,')
    with pytest.raises(Pose2MeshError, match="malformed JSON") as info:
        build_dataset(cfg, "PW3D", "test", smpl)
    assert str(path) in str(info.value) and "line 1" in str(info.value)

    detections = data_copy / "Human36M" / "absnet_output_on_testset.json"
    entries = json.loads(detections.read_text())
    missing = min(entries)
    del entries[missing]
    detections.write_text(json.dumps(entries))
    with pytest.raises(Pose2MeshError, match=missing) as info:
        build_dataset(
            bench_cfg(fx, *H36M_H36M, "DATASET.use_gt_input", "False", data_dir=data_copy),
            "Human36M",
            "test",
            smpl,
        )
    assert str(detections) in str(info.value)

    fits = data_copy / "MuCo" / "data" / "smpl_param.json"
    content = json.loads(fits.read_text())
    next(iter(content.values()))["shape"] = [1.0, 2.0]
    fits.write_text(json.dumps(content))
    with pytest.raises(Pose2MeshError, match="'shape' has shape") as info:
        build_dataset(cfg, "MuCo", "train", smpl)
    assert str(fits) in str(info.value)


def test_wrong_body_model_or_joint_set_is_refused(fx, smpl):
    with pytest.raises(Pose2MeshError, match="MODEL.body_model 'mano'"):
        build_dataset(bench_cfg(fx, *SMPL_SMPL), "FreiHAND", "train", smpl)
    with pytest.raises(Pose2MeshError, match="AUG.flip"):
        build_dataset(bench_cfg(fx, *H36M_H36M, "AUG.flip", "True"), "Human36M", "train", smpl)


# ----------------------------------------------------------------------------- shared pieces
def test_root_rotation_composition_is_exact_and_zero_safe():
    generator = torch.Generator().manual_seed(0)
    pose = torch.randn(64, 24, 3, generator=generator, dtype=torch.float64)
    pose[:4, 0] = 0.0
    pose[4, 0] = torch.tensor([math.pi, 0.0, 0.0], dtype=torch.float64)
    rotation = axis_angle_to_matrix(torch.randn(64, 3, generator=generator, dtype=torch.float64))
    composed = compose_root_rotation(pose, rotation)
    assert torch.isfinite(composed).all()
    torch.testing.assert_close(axis_angle_to_matrix(composed[:, 0]), rotation @ axis_angle_to_matrix(pose[:, 0]))
    torch.testing.assert_close(composed[:, 1:], pose[:, 1:])
    torch.testing.assert_close(
        matrix_to_axis_angle(torch.eye(3, dtype=torch.float64)[None]), torch.zeros(1, 3, dtype=torch.float64)
    )


def test_batched_pipeline_matches_the_reference_crop_with_rotation_and_flip():
    rng = np.random.default_rng(0)
    uv = rng.uniform(100, 600, (6, 19, 2))
    rot = rng.uniform(-30, 30, 6)
    flip = np.array([True, False, True, False, True, False])
    tight = tight_bbox(torch.tensor(uv))
    bbox, ok = process_bbox_batch(tight, 288 / 384)
    crop = crop_points(torch.tensor(uv), bbox, torch.tensor(rot), 288, 384)
    crop = flip_crop_points(crop, torch.tensor(flip), COCO.flip_permutation(), 288)
    pose2d = crop_to_pose2d(crop, 288, 384)
    for i in range(6):
        reference = normalize_pose2d(
            uv[i], (384, 288), rot_deg=rot[i], flip_pairs=COCO.flip_pairs, flip=bool(flip[i])
        )
        np.testing.assert_allclose(bbox[i].numpy(), reference.bbox, rtol=1e-5)
        np.testing.assert_allclose(pose2d[i].numpy(), reference.pose2d, atol=1e-4)
    assert bool(ok.all())
    _, ok = process_bbox_batch(torch.tensor([[0.0, 0.0, 0.5, 30.0], [0, 0, 0, 0]]), 0.75)
    assert not bool(ok.any())


def test_h36m_gaussian_error_model_statistics():
    offsets = h36m_gaussian_offsets_px(20000, 288, 384, generator=torch.Generator().manual_seed(1))
    stats = torch.tensor(H36M_ERROR_STATS)
    moved = (offsets != 0).any(-1).float().mean(0)
    torch.testing.assert_close(moved, stats[:, 4], atol=0.01, rtol=0)
    kept_mean = offsets.sum(0) / (offsets != 0).any(-1).float().sum(0)[:, None]
    torch.testing.assert_close(kept_mean, stats[:, :2] * torch.tensor([288 / 256, 384 / 256]), atol=0.1, rtol=0)


def _synthesize_reference(rng, gt, partner, sigma, area, prob):
    """The original's sampler for one keypoint with a valid partner (500/2000/500/125 proposals)."""
    d10, d50, d85 = (math.sqrt(-2 * area * (2 * sigma) ** 2 * math.log(k)) for k in (0.10, 0.50, 0.85))

    def ring(center, n, low, high):
        r, a = rng.uniform(low, high, n), rng.uniform(0, 2 * math.pi, n)
        return center + np.stack([r * np.cos(a), r * np.sin(a)], 1), r

    pts, r = ring(gt, 500, d85, d50)
    jitter = pts[np.linalg.norm(pts - partner, axis=1) > r]
    pts, r = ring(gt, 125, 0, d85)
    good = pts[np.linalg.norm(pts - partner, axis=1) > r]
    pts, r = ring(partner, 500, 0, d50)
    inversion = pts[np.linalg.norm(pts - gt, axis=1) > r]
    pts, _ = ring(gt, 2000, d50, d10)
    miss_gt = pts[np.linalg.norm(pts - partner, axis=1) > d50]
    pts, _ = ring(partner, 2000, d50, d10)
    miss_p = pts[np.linalg.norm(pts - gt, axis=1) > d50]
    miss = np.concatenate([miss_gt, miss_p[rng.integers(0, max(len(miss_p), 1), len(miss_p) // 4)]])
    candidates = [jitter, miss, inversion, good]
    p = np.array([q if len(c) else 0.0 for q, c in zip(prob, candidates)])
    chosen = candidates[rng.choice(4, p=p / p.sum())]
    return chosen[rng.integers(len(chosen))]


def test_synthesize_coco_pose_matches_the_original_sampler():
    keypoints = np.full((17, 2), 100.0)
    keypoints[1], keypoints[2] = [100.0, 100.0], [101.5, 100.0]  # eyes close together: exclusions matter
    area, count = 30000.0, 1500
    rng = np.random.default_rng(0)
    prob = _type_probabilities(torch.tensor([17]))[0, 1].numpy()
    reference = np.array(
        [
            _synthesize_reference(rng, keypoints[1], keypoints[2], COCO_KEYPOINT_SIGMAS[1], area, prob)
            for _ in range(count)
        ]
    )
    batch = torch.tensor(keypoints, dtype=torch.float32).expand(4 * count, 17, 2)
    out, kept = synthesize_coco_pose(
        batch,
        torch.ones(4 * count, 17, dtype=torch.bool),
        torch.full((4 * count,), area),
        generator=torch.Generator().manual_seed(0),
    )
    ours = out[:, 1].double().numpy()
    assert bool(kept.all()) and COCO_FLIP_PARTNER[1] == 2
    for samples in (reference, ours):
        assert np.isfinite(samples).all()
    q = [25, 50, 75, 90]
    ref_d = np.percentile(np.linalg.norm(reference - keypoints[1], axis=1), q)
    our_d = np.percentile(np.linalg.norm(ours - keypoints[1], axis=1), q)
    np.testing.assert_allclose(our_d, ref_d, rtol=0.12)
    closer_to_partner = [
        np.mean(np.linalg.norm(s - keypoints[2], axis=1) < np.linalg.norm(s - keypoints[1], axis=1))
        for s in (reference, ours)
    ]
    assert abs(closer_to_partner[0] - closer_to_partner[1]) < 0.03


def test_synthesize_coco_pose_second_twin_is_perturbed_around_the_perturbed_first():
    """The original perturbs joints in index order and writes each back: R_Ankle (16) is
    placed around L_Ankle (15) as already perturbed, L_Ankle around R_Ankle still clean.
    Points drawn around the partner (inversion, radius <= d50; the partner's miss ring,
    d50..d10) lie within d10 of the partner's centre, so every R_Ankle that lands by its twin
    is within d10 of the *noisy* L_Ankle. (Centred on the clean L_Ankle, ~10 % would not.)"""
    count = 20000
    keypoints = np.stack([50.0 * np.arange(17), np.full(17, 50.0)], 1)
    keypoints[15], keypoints[16] = [100.0, 300.0], [600.0, 300.0]  # 500 px apart: no exclusion
    area = 100.0 * 100.0
    d10 = math.sqrt(-2 * area * (2 * COCO_KEYPOINT_SIGMAS[16]) ** 2 * math.log(0.10))
    out, kept = synthesize_coco_pose(
        torch.tensor(keypoints, dtype=torch.float32).expand(count, 17, 2),
        torch.ones(count, 17, dtype=torch.bool),
        torch.full((count,), area),
        generator=torch.Generator().manual_seed(3),
    )
    assert bool(kept.all()) and COCO_FLIP_PARTNER[16] == 15
    left, right = out[:, 15].double().numpy(), out[:, 16].double().numpy()
    right_by_twin = np.linalg.norm(right - keypoints[16], axis=1) > 250
    left_by_twin = np.linalg.norm(left - keypoints[15], axis=1) > 250
    assert right_by_twin.sum() > 600 and left_by_twin.sum() > 600  # ~6-7 % of the draws each
    to_noisy_twin = np.linalg.norm(right[right_by_twin] - left[right_by_twin], axis=1)
    assert to_noisy_twin.max() <= d10 + 1e-3
    to_clean_twin = np.linalg.norm(right[right_by_twin] - keypoints[15], axis=1)
    assert (to_clean_twin > d10 + 1.0).mean() > 0.01  # the two centres are told apart
    # the first of the pair is placed around its twin's clean position
    assert np.linalg.norm(left[left_by_twin] - keypoints[16], axis=1).max() <= d10 + 1e-3


# ----------------------------------------------------------------------------- mixing
def test_mixed_dataset_lengths_draws_collate_and_prepare(fx, smpl):
    cfg = bench_cfg(fx, *H36M_COCO, "DATASET.use_gt_input", "False")
    parts = [build_dataset(cfg, name, "train", smpl) for name in ("Human36M", "COCO", "MuCo")]
    mixed = MixedDataset(parts, seed=5)
    max_len = max(len(p) for p in parts)
    assert len(mixed) == 3 * max_len
    sources, indices = mixed.sources.copy(), mixed.indices.copy()
    mixed.set_epoch(1)
    assert not np.array_equal(sources, mixed.sources)
    mixed.set_epoch(0)
    np.testing.assert_array_equal(mixed.sources, sources)
    np.testing.assert_array_equal(mixed.indices, indices)
    for position in range(len(mixed)):
        length = len(parts[sources[position]])
        within = position % max_len
        if within < (max_len // length) * length:
            assert indices[position] == within % length
        assert 0 <= indices[position] < length
    assert set(np.unique(sources)) == {0, 1, 2}

    batch = mixed.collate_fn([mixed[i] for i in range(24)])
    counts = batch["mixed_sources"]
    assert int(counts.sum()) == 24
    out = mixed.prepare_batch(batch, smpl)
    assert out["pose2d"].shape == (24, 19, 2) and out["mesh_m"].shape == (24, smpl.num_vertices, 3)
    assert set(out) == {
        "pose2d",
        "lift_pose3d_mm",
        "lift_pose3d_valid",
        "reg_pose3d_mm",
        "reg_pose3d_valid",
        "mesh_m",
        "mesh_valid",
    }
    assert torch.isfinite(out["pose2d"]).all()


# ----------------------------------------------------------------------------- engine
ENGINE_RUNS = [
    # train config, test config (None: the evaluation done by training suffices), train batch
    ("pose2mesh_human36J_train_human36", "pose2mesh_human36J_test_human36", 4),
    ("pose2mesh_cocoJ_train_human36_coco_muco", "pose2mesh_cocoJ_test_3dpw", 6),
    ("pose2mesh_cocoJ_train_human36_coco_amass", None, 6),
    ("pose2mesh_smplJ_train_surreal", "pose2mesh_smplJ_test_surreal", 4),
    ("pose2mesh_manoJ_train_freihand", "pose2mesh_manoJ_test_freihand", 4),
    ("posenet_human36J_train_human36", "posenet_human36J_test_human36", 4),
    ("posenet_cocoJ_train_human36_coco_amass", "posenet_cocoJ_test_3dpw", 6),
    ("HGN_human36J_train_human36", "HGN_human36J_test_human36", 4),
]


def engine_cfg(fx, name, tmp_path, batch_size):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "asset" / "yaml" / f"{name}.yml"
    return load_config(
        path,
        [
            "DATA_DIR",
            str(fx.data_dir),
            "SMPL_DIR",
            str(fx.smpl_dir),
            "MANO_DIR",
            str(fx.mano_dir),
            "OUTPUT_ROOT",
            str(tmp_path),
            "DEVICE",
            "cpu",
            "DATASET.workers",
            "0",
            "TRAIN.batch_size",
            str(batch_size),
            "TEST.batch_size",
            "8",
            "TRAIN.end_epoch",
            "1",
            "MODEL.posenet_hidden",
            "32",
            "MODEL.hgn_hidden",
            "16",
            "MODEL.posenet_pretrained",
            "False",
            "TEST.vis",
            "False",
        ],
    )


@pytest.mark.parametrize("train_name,test_name,batch_size", ENGINE_RUNS, ids=[r[0] for r in ENGINE_RUNS])
def test_train_one_step_and_evaluate_on_the_fixture(fx, tmp_path, monkeypatch, train_name, test_name, batch_size):
    from pose2mesh.engine.evaluator import run_test
    from pose2mesh.engine.trainer import run_training

    monkeypatch.setenv("POSE2MESH_CACHE_DIR", str(fx.root / "cache"))
    cfg = engine_cfg(fx, train_name, tmp_path, batch_size)
    metrics = run_training(cfg, exp_dir=str(tmp_path / "train"))
    has_gt = "freihand" not in train_name
    assert "MPJPE" in metrics and (math.isfinite(metrics["MPJPE"]) == has_gt)
    final = tmp_path / "train" / "checkpoint" / "final.pth.tar"
    assert final.is_file()
    if test_name is None:
        return
    test_metrics = run_test(
        engine_cfg(fx, test_name, tmp_path, batch_size), weights=str(final), exp_dir=str(tmp_path / "test")
    )
    saved = json.loads((tmp_path / "test" / "result" / "metrics.json").read_text())
    assert set(test_metrics) <= set(saved)
    if test_name == "pose2mesh_human36J_test_human36":
        assert {
            "MPJPE",
            "PA-MPJPE",
            "SMPL-MPJPE",
            "MPVPE",
            "PA-MPVPE",
            "MPJPE/Directions",
            "PA-MPJPE/Discussion",
        } <= set(saved)
    if test_name == "pose2mesh_cocoJ_test_3dpw":
        assert {"MPJPE", "PA-MPJPE", "SMPL-MPJPE", "MPVPE", "PA-MPVPE"} <= set(saved) and saved["PA-MPVPE"] > 0
    if "freihand" in test_name:
        joints, verts = json.loads((tmp_path / "test" / "result" / "pred.json").read_text())
        assert np.array(joints).shape == (fx.manifest["FreiHAND"]["test"], 21, 3)
        assert len(verts) == fx.manifest["FreiHAND"]["test"]


def test_3dpw_evaluation_without_the_training_files_skips_only_the_baseline(fx, tmp_path, monkeypatch, data_copy):
    """The Human36M training annotations (the 3DPW config's train list) serve only the mean-pose
    baseline: without them main/test.py scores the model, logs why the baseline is missing and
    says so in metrics.json (the H36M joint regressor beside them is still needed)."""
    from pose2mesh.engine import builders
    from pose2mesh.engine.checkpoint import atomic_save
    from pose2mesh.engine.evaluator import run_test

    monkeypatch.setenv("POSE2MESH_CACHE_DIR", str(fx.root / "cache"))
    shutil.rmtree(data_copy / "Human36M" / "annotations")
    cfg = load_config(engine_cfg(fx, "pose2mesh_cocoJ_test_3dpw", tmp_path, 6), ["DATA_DIR", str(data_copy)])
    body_model = builders.build_body_model(cfg, torch.device("cpu"))
    model = builders.build_network(cfg, builders.build_hierarchy(cfg, body_model))
    weights = tmp_path / "weights.pth.tar"
    atomic_save({"epoch": 1, "model_state_dict": model.state_dict(), "config": cfg.dump()}, weights)

    metrics = run_test(cfg, weights=str(weights), exp_dir=str(tmp_path / "test"))
    saved = json.loads((tmp_path / "test" / "result" / "metrics.json").read_text())
    assert math.isfinite(metrics["MPJPE"]) and saved["MPJPE"] == pytest.approx(metrics["MPJPE"])
    assert saved["baseline"] == {} and "Human36M" in saved["baseline_skipped"]
    log = (tmp_path / "test" / "log.txt").read_text()
    assert "WARNING mean-pose baseline skipped: the training set ['Human36M', 'COCO', 'MuCo'] is unavailable " \
           f"(missing dataset file {data_copy / 'Human36M' / 'annotations'}" in log


def test_coco_noise_area_does_not_change_under_rotation():
    """The original measures the person as the product of two mapped box-edge lengths, which
    a rotation leaves alone (the old |dx' dy'| of the mapped diagonal shrank to x0.834 at 17
    degrees and x0.0095 at -45)."""
    from pose2mesh.datasets.transforms import map_box_corners_area

    tight = torch.tensor([[100.0, 50.0, 80.0, 200.0]] * 3)
    bbox = torch.tensor([[60.0, 0.0, 225.0, 300.0]] * 3)  # aspect 288 / 384
    area = map_box_corners_area(tight, bbox, torch.tensor([0.0, 17.0, -45.0]), 288, 384)
    scale = 288 / 225.0
    expected = (80.0 * scale) * (200.0 * scale)  # hand-checked: the crop scales both edges
    torch.testing.assert_close(area, torch.full((3,), expected), rtol=1e-5, atol=1e-3)


def test_freihand_predictions_follow_image_id_order(fx, mano, tmp_path):
    """pred.json slot k holds the prediction of the k-th image id, whatever the order of the
    annotations in freihand_eval_coco.json (the original sorts by image id)."""
    data_dir = tmp_path / "data"
    shutil.copytree(fx.data_dir / "FreiHAND", data_dir / "FreiHAND")
    coco_path = data_dir / "FreiHAND" / "data" / "freihand_eval_coco.json"
    coco = json.loads(coco_path.read_text())
    coco["annotations"] = coco["annotations"][::-1]
    coco_path.write_text(json.dumps(coco))
    test = build_dataset(bench_cfg(fx, *MANO_MANO, data_dir=data_dir), "FreiHAND", "test", mano)
    assert len(test) > 1 and test.image_ids == sorted(test.image_ids)
    out = prepared(test, mano)
    detections = {
        d["image_id"]: np.array(d["keypoints"])[:, :2]
        for d in json.loads((data_dir / "FreiHAND" / "data" / "hrnet_output_on_testset.json").read_text())
    }
    for i, image_id in enumerate(test.image_ids):
        np.testing.assert_allclose(out["pose2d"][i].numpy(), standardize(detections[image_id]), atol=1e-4)
