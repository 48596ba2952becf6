"""Write a tiny instance of every benchmark in its official on-disk format.

    python tools/make_fixtures.py OUT_DIR [--smpl_dir DIR --mano_dir DIR] [--seed 0]

Layout written under OUT_DIR (point ``DATA_DIR``, ``SMPL_DIR`` and ``MANO_DIR`` at it)::

    data/Human36M/annotations/Human36M_subject{S}_{data,camera,joint_3d,smpl_param}.json
    data/Human36M/J_regressor_h36m_correct.npy, absnet_output_on_testset.json
    data/PW3D/data/3DPW_latest_test.json, darkpose_3dpw_testset_output.json
    data/COCO/annotations/person_keypoints_train2017.json, coco_smplify_train.json
    data/COCO/J_regressor_coco.npy
    data/MuCo/data/MuCo-3DHP.json, smpl_param.json
    data/AMASS/data/{CMU,BMLrub,KIT}/<seq>/<seq>_poses.npz
    data/SURREAL/data/{train,val}.json, hrnet_output_on_{train,val}set.json
    data/FreiHAND/data/freihand_{train,eval}_{coco,data}.json, hrnet_output_on_{train,test}set.json
    smplpytorch/smplpytorch/native/models/basicModel_{neutral,m,f}_lbs_10_207_0_v1.0.0.pkl
    manopth/mano/models/MANO_RIGHT.pkl
    fixture_manifest.json

Without ``--smpl_dir`` / ``--mano_dir`` it writes small *fake* SMPL (300 vertices) and MANO
(780 vertices) files in the official chumpy pickle layout with the writers of
``tests/fake_smpl.py``; with them, it reads the given model files (fake or real) instead.

Ground truth is made consistent with the body model: joints, keypoints, projections and
detections are computed from the meshes of the written SMPL/MANO parameters (plus small noise
for detections). A few samples are deliberately bad so that the loaders' filters have
something to count: frames without a SMPL fit, a degenerate box, a crowd annotation, fits that
fail the fitting checks, an oversized shape (clamp), a zero root rotation. What each loader
should find is written to ``fixture_manifest.json`` (samples per split, skipped and masked
counts), which the tests read.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SMPL_GENDER_FILES = {"neutral": "neutral", "male": "m", "female": "f"}


# ----------------------------------------------------------------------------- helpers
def _load_fake_writers():
    """``write_fake_smpl`` and ``write_fake_mano`` from tests/fake_smpl.py (loaded by path:
    tools/ and tests/ are not packages)."""
    spec = importlib.util.spec_from_file_location("fake_smpl", REPO / "tests" / "fake_smpl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_fake_smpl, module.write_fake_mano


def write_fake_models(out_dir: Path) -> tuple[Path, Path]:
    """Fake neutral/male/female SMPL and MANO files under ``out_dir``; returns (smpl_dir, mano_dir)."""
    from pose2mesh.body_models.smplx_models import mano_model_path, smpl_model_path

    write_fake_smpl, write_fake_mano = _load_fake_writers()
    smpl_dir, mano_dir = out_dir / "smplpytorch", out_dir / "manopth"
    for seed, gender in enumerate(SMPL_GENDER_FILES):
        write_fake_smpl(smpl_model_path(smpl_dir, gender), seed=seed)
    write_fake_mano(mano_model_path(mano_dir), hands_mean=0.1 * np.sin(np.arange(45)))
    return smpl_dir, mano_dir


def _dump(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def _tolist(array) -> list:
    return np.asarray(array, dtype=np.float64).round(6).tolist()


def _sparse_regressor(rng, rows: int, num_vertices: int, per_row: int) -> np.ndarray:
    matrix = np.zeros((rows, num_vertices))
    for row in range(rows):
        matrix[row, rng.choice(num_vertices, per_row, replace=False)] = rng.dirichlet(np.ones(per_row))
    return matrix


def _rotation(axis_angle) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(axis_angle, dtype=np.float64)).as_matrix()


def _project(points, focal, princpt) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points[..., :2] / points[..., 2:3] * np.asarray(focal) + np.asarray(princpt)


def _bbox(uv, margin: float = 1.2) -> list:
    lo, hi = uv.min(0), uv.max(0)
    center, size = (lo + hi) / 2, (hi - lo) * margin
    return _tolist(np.concatenate([center - size / 2, size]))


class Bodies:
    """Forward passes of the (fake or real) models used to make consistent ground truth."""

    def __init__(self, smpl_dir: Path, mano_dir: Path, data_dir: Path):
        from pose2mesh.body_models import build_body_model

        self.smpl = {
            g: build_body_model("smpl", smpl_dir=smpl_dir, data_dir=data_dir, gender=g) for g in SMPL_GENDER_FILES
        }
        self.mano = build_body_model("mano", mano_dir=mano_dir)

    @torch.no_grad()
    def smpl_forward(self, pose, shape, trans=None, gender="neutral"):
        """(24, 3) pose, (10,) shape, (3,) m -> vertices (V, 3) m, FK joints (24, 3) m (float64)."""
        model = self.smpl[gender]
        params = {
            "pose_aa": torch.tensor(pose, dtype=torch.float32).reshape(1, 24, 3),
            "shape": torch.tensor(shape, dtype=torch.float32)[None],
        }
        if trans is not None:
            params["transl_m"] = torch.tensor(trans, dtype=torch.float32)[None]
        vertices, joints = model.forward_with_joints(**params)
        return vertices[0].double().numpy(), joints[0].double().numpy()

    def regress(self, vertices, joint_set: str) -> np.ndarray:
        regressor = self.smpl["neutral"].joint_regressor(joint_set).double().numpy()
        return regressor @ vertices

    @torch.no_grad()
    def mano_forward(self, pose, shape, trans):
        vertices, joints = self.mano.forward_with_joints(
            pose_aa=torch.tensor(pose, dtype=torch.float32).reshape(1, 16, 3),
            shape=torch.tensor(shape, dtype=torch.float32)[None],
            transl_m=torch.tensor(trans, dtype=torch.float32)[None],
        )
        return vertices[0].double().numpy(), joints[0].double().numpy()


def _smpl_pose(rng, root=None, scale: float = 0.25) -> np.ndarray:
    pose = rng.normal(0, scale, (24, 3))
    pose[0] = rng.normal(0, 1.0, 3) if root is None else root
    return pose


def _look_at(center_mm, eye_mm) -> tuple[np.ndarray, np.ndarray]:
    """World (z up) -> camera (x right, y down, z forward) rotation and translation (mm)."""
    forward = np.asarray(center_mm, float) - np.asarray(eye_mm, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return rotation, -rotation @ np.asarray(eye_mm, float)


# ----------------------------------------------------------------------------- datasets
def write_human36m(root: Path, bodies: Bodies, rng) -> dict:
    """Protocol-2 subjects; per subject 2 actions x 2 cameras x frames."""
    ann = root / "annotations"
    manifest = {
        "train": 0,
        "test": 0,
        "skipped_train": {},
        "skipped_test": {},
        "bad_fit_train": 0,
        "bad_fit_test": 0,
    }
    detections = {}
    image_id = annotation_id = 0
    for subject in (1, 5, 6, 7, 8, 9, 11):
        split = "train" if subject < 9 else "test"
        frames = (0, 3, 5) if split == "train" else (0, 25, 50)  # 3 / 25 are dropped by subsampling
        cameras = {}
        for cam_idx in (1, 2):
            angle = 0.7 * cam_idx + 0.1 * subject
            rotation, translation = _look_at([0, 0, 900.0], [4500 * np.cos(angle), 4500 * np.sin(angle), 1500.0])
            cameras[str(cam_idx)] = {
                "R": _tolist(rotation),
                "t": _tolist(translation),
                "f": [1145.0 + cam_idx, 1144.0],
                "c": [512.0 + cam_idx, 515.0],
            }
        images, annotations, joints, fits = [], [], {}, {}
        for action in (2, 3):
            for frame in frames:
                pose = _smpl_pose(rng, root=np.zeros(3) if (subject, action, frame) == (9, 2, 0) else None)
                shape = rng.normal(0, 0.8, 10)
                if (action, frame) == (3, 0):
                    shape[0] = 4.0  # exercises the shape clamp
                trans = rng.normal(0, 0.3, 3)
                clamped = np.zeros(10) if np.abs(shape).max() > 3 else shape  # the loaders' shape clamp
                vertices, _ = bodies.smpl_forward(pose, clamped, trans)
                world_mm = bodies.regress(vertices * 1000.0, "human36") + rng.normal(0, 1.0, (17, 3))
                kept = frame % (5 if split == "train" else 50) == 0
                bad_fit = action == 3 and frame == frames[-1]
                no_fit = action == 2 and frame == frames[-1]
                if bad_fit:
                    world_mm = world_mm + rng.normal(0, 80.0, (17, 3))
                joints.setdefault(str(action), {}).setdefault("1", {})[str(frame)] = _tolist(world_mm)
                if not no_fit:
                    fits.setdefault(str(action), {}).setdefault("1", {})[str(frame)] = {
                        "pose": _tolist(pose.reshape(-1)),
                        "shape": _tolist(shape),
                        "trans": _tolist(trans),
                        "fitting_error": 0.0,
                    }
                for cam_idx, cam in cameras.items():
                    image_id += 1
                    annotation_id += 1
                    folder = f"s_{subject:02d}_act_{action:02d}_subact_01_ca_{int(cam_idx):02d}"
                    name = f"{folder}_{frame + 1:06d}.jpg"
                    cam_mm = world_mm @ np.asarray(cam["R"]).T + np.asarray(cam["t"])
                    uv = _project(cam_mm, cam["f"], cam["c"])
                    degenerate = split == "train" and action == 2 and frame == 0 and cam_idx == "2"
                    images.append(
                        {
                            "id": image_id,
                            "file_name": f"{folder}/{name}",
                            "width": 1000,
                            "height": 1002,
                            "subject": subject,
                            "action_name": "x",
                            "action_idx": action,
                            "subaction_idx": 1,
                            "frame_idx": frame,
                            "cam_idx": int(cam_idx),
                        }
                    )
                    annotations.append(
                        {
                            "id": annotation_id,
                            "image_id": image_id,
                            "bbox": [10.0, 10.0, 0.0, 50.0] if degenerate else _bbox(uv),
                        }
                    )
                    if split == "test":
                        detections[name] = _tolist(uv + rng.normal(0, 3.0, uv.shape))
                    if not kept:
                        continue
                    if no_fit:
                        manifest[f"skipped_{split}"]["no SMPL fit"] = (
                            manifest[f"skipped_{split}"].get("no SMPL fit", 0) + 1
                        )
                    elif degenerate:
                        skipped = manifest["skipped_train"]
                        skipped["invalid bounding box"] = skipped.get("invalid bounding box", 0) + 1
                    else:
                        manifest[split] += 1
                        manifest[f"bad_fit_{split}"] += int(bad_fit)
        prefix = f"Human36M_subject{subject}"
        _dump(ann / f"{prefix}_data.json", {"images": images, "annotations": annotations})
        _dump(ann / f"{prefix}_camera.json", cameras)
        _dump(ann / f"{prefix}_joint_3d.json", joints)
        _dump(ann / f"{prefix}_smpl_param.json", fits)
    _dump(root / "absnet_output_on_testset.json", detections)
    return manifest


def write_pw3d(root: Path, bodies: Bodies, rng) -> dict:
    images, annotations, detections = [], [], []
    count = 0
    for image_id in range(1, 6):
        focal, princpt = [1961.0, 1969.0], [540.0, 960.0]
        images.append(
            {
                "id": image_id,
                "file_name": f"image_{image_id:05d}.jpg",
                "sequence": "downtown_walkBridge_01",
                "frame_idx": image_id,
                "width": 1080,
                "height": 1920,
                "cam_param": {"focal": focal, "princpt": princpt, "R": _tolist(np.eye(3)), "t": [0.0, 0.0, 0.0]},
            }
        )
        for person in range(2 if image_id % 2 else 1):
            count += 1
            gender = ("male", "female")[(image_id + person) % 2]
            pose = _smpl_pose(rng, root=np.array([np.pi, 0.0, 0.0]) + rng.normal(0, 0.2, 3))
            shape, trans = rng.normal(0, 1.0, 10), np.array([0.5 * person - 0.2, 0.1, 4.0 + person])
            vertices, fk = bodies.smpl_forward(pose, shape, trans, gender)
            coco = bodies.regress(vertices, "coco")[:17]
            uv = _project(coco, focal, princpt)
            annotations.append(
                {
                    "id": 100 + count,
                    "image_id": image_id,
                    "person_id": person,
                    "bbox": _bbox(uv),
                    "smpl_param": {
                        "pose": _tolist(pose.reshape(-1)),
                        "shape": _tolist(shape),
                        "trans": _tolist(trans),
                        "gender": gender,
                    },
                    "openpose_result": _tolist(np.zeros((18, 3))),
                    "joint_cam": _tolist(fk),
                    "joint_img": _tolist(_project(fk, focal, princpt)),
                    "fitted_joint_cam": _tolist(fk),
                }
            )
            scores = rng.uniform(0.3, 1.0, (17, 1))
            detections.append(
                {
                    "image_id": image_id,
                    "annotation_id": 100 + count,
                    "keypoints": _tolist(np.concatenate([uv + rng.normal(0, 2.0, uv.shape), scores], 1)),
                }
            )
    # A copy of the last person as another person whose box is 0.5 px wide: the original's
    # process_bbox check drops it (copied, so the random stream of later fixtures is unchanged).
    annotations.append({**annotations[-1], "id": 100 + count + 1, "person_id": 2,
                        "bbox": [5.0, 5.0, 0.5, 40.0]})
    detections.append({**detections[-1], "annotation_id": 100 + count + 1})
    _dump(root / "data" / "3DPW_latest_test.json", {"images": images, "annotations": annotations})
    _dump(root / "data" / "darkpose_3dpw_testset_output.json", detections)
    return {"test": count, "skipped_test": {"invalid bounding box": 1}}


def write_coco(root: Path, bodies: Bodies, rng) -> dict:
    """Nine annotations from ``rng`` (a crowd, one without keypoints, one without a fit, a bad
    fit, an oversized shape) and a tenth with a box under one pixel wide (no draw from ``rng``,
    so the datasets written after this one are unchanged by it)."""
    images, annotations, fits = [], [], {}
    manifest = {
        "train": 0,
        "skipped_train": {"crowd or no keypoint": 2, "invalid bounding box": 1, "no SMPLify fit": 1},
        "bad_fit_train": 0,
    }
    for index in range(10):
        image_id, ann_id = 1000 + index, 5000 + index
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": 640, "height": 480})
        degenerate = index == 9
        if degenerate:  # deterministic, see the docstring
            pose, shape = np.zeros((24, 3)), np.zeros(10)
            scale, trans = np.array([420.0, 420.0]), np.array([320.0, 240.0])
        else:
            pose = _smpl_pose(rng)
            shape = rng.normal(0, 1.0, 10)
            scale, trans = np.array([420.0, 420.0]), np.array([320.0, 240.0]) + rng.normal(0, 20, 2)
        if index == 3:
            shape[0] = 4.0  # exercises the shape clamp
        clamped = np.zeros(10) if np.abs(shape).max() > 3 else shape  # the loader's shape clamp
        vertices, _ = bodies.smpl_forward(pose, clamped)
        coco_mm = bodies.regress(vertices * 1000.0, "coco")[:17]
        uv = coco_mm[:, :2] / 1000.0 * scale + trans
        visible = np.full(17, 2.0)
        if not degenerate:
            uv = uv + rng.normal(0, 0.5, (17, 2))
            visible[rng.choice(17, 3, replace=False)] = 0
        bad_fit = index == 6
        if bad_fit:
            uv = uv + rng.normal(0, 40.0, uv.shape)
        keypoints = np.concatenate([uv * (visible[:, None] > 0), visible[:, None]], 1)
        crowd, empty, no_fit = index == 0, index == 1, index == 2
        if empty:
            keypoints[:] = 0
        annotations.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": int(crowd),
                "num_keypoints": 0 if empty else int((visible > 0).sum()),
                "keypoints": _tolist(keypoints.reshape(-1)),
                "bbox": [10.0, 10.0, 0.5, 200.0] if degenerate else _bbox(uv, 1.1),
                "area": 1000.0,
            }
        )
        if not no_fit:
            fits[str(ann_id)] = {
                "smpl_param": {
                    "pose": _tolist(pose.reshape(-1)),
                    "shape": _tolist(shape),
                    "trans": [0.0, 0.0, 0.0],
                },
                "cam_param": {"s": float(scale[0]) if index % 2 else _tolist(scale), "t": _tolist(trans)},
                "loss": 0.0,
            }
        if not (crowd or empty or no_fit or degenerate):
            manifest["train"] += 1
            manifest["bad_fit_train"] += int(bad_fit)
    categories = [{"id": 1, "name": "person", "keypoints": [], "skeleton": []}]
    _dump(
        root / "annotations" / "person_keypoints_train2017.json",
        {"images": images, "annotations": annotations, "categories": categories},
    )
    _dump(root / "annotations" / "coco_smplify_train.json", fits)
    return manifest


MUCO_FROM_H36M = {
    "R_Shoulder": 14,
    "R_Elbow": 15,
    "R_Wrist": 16,
    "L_Shoulder": 11,
    "L_Elbow": 12,
    "L_Wrist": 13,
    "R_Hip": 1,
    "R_Knee": 2,
    "R_Ankle": 3,
    "L_Hip": 4,
    "L_Knee": 5,
    "L_Ankle": 6,
    "Pelvis": 0,
    "Head": 10,
    "Head_top": 10,
    "Thorax": 8,
    "Spine": 7,
}
MUCO_FROM_SMPL = {"R_Hand": 23, "L_Hand": 22, "R_Toe": 11, "L_Toe": 10}
MUCO_ORDER = (
    "Head_top",
    "Thorax",
    "R_Shoulder",
    "R_Elbow",
    "R_Wrist",
    "L_Shoulder",
    "L_Elbow",
    "L_Wrist",
    "R_Hip",
    "R_Knee",
    "R_Ankle",
    "L_Hip",
    "L_Knee",
    "L_Ankle",
    "Pelvis",
    "Spine",
    "Head",
    "R_Hand",
    "L_Hand",
    "R_Toe",
    "L_Toe",
)


def write_muco(root: Path, bodies: Bodies, rng) -> dict:
    """Six images of two people from ``rng`` (the closest one: a bad fit, a missing fit, an
    oversized shape), then two from a generator of their own (so the datasets written after
    this one are unchanged) whose closest person has a box under one pixel wide, or a NaN in
    its fit."""
    images, annotations, fits = [], [], {}
    manifest = {
        "train": 0,
        "skipped_train": {"invalid bounding box": 1, "no SMPL fit": 1, "NaN in the SMPL fit": 1},
        "bad_fit_train": 0,
    }
    own_rng = np.random.default_rng(4242)
    ann_id = 0
    for image_id in range(1, 9):
        draw = rng if image_id <= 6 else own_rng
        focal, princpt = [1500.0, 1500.0], [1024.0, 1024.0]
        images.append(
            {
                "id": image_id,
                "width": 2048,
                "height": 2048,
                "file_name": f"augmented_set/{image_id}.jpg",
                "f": focal,
                "c": princpt,
            }
        )
        for person in range(2):
            ann_id += 1
            pose = _smpl_pose(draw, root=np.array([np.pi, 0, 0]) + draw.normal(0, 0.2, 3))
            shape = draw.normal(0, 1.0, 10)
            if image_id == 2 and person == 0:
                shape[0] = 4.0  # exercises the shape clamp
            trans = np.array([0.6 * person - 0.3, 0.0, 3.5 + 1.5 * person])  # person 0 is the closest
            clamped = np.zeros(10) if np.abs(shape).max() > 3 else shape  # the loader's shape clamp
            vertices, fk = bodies.smpl_forward(pose, clamped, trans)
            h36m, smpl = bodies.regress(vertices * 1000, "human36"), fk * 1000
            cam = np.stack(
                [h36m[MUCO_FROM_H36M[n]] if n in MUCO_FROM_H36M else smpl[MUCO_FROM_SMPL[n]] for n in MUCO_ORDER]
            )
            closest = person == 0
            bad_fit = image_id == 4 and closest
            no_fit = image_id == 5 and closest
            degenerate = image_id == 7 and closest
            nan_fit = image_id == 8 and closest
            if bad_fit:
                cam = cam + rng.normal(0, 90.0, cam.shape)
            uv = _project(cam, focal, princpt)
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "keypoints_cam": _tolist(cam),
                    "keypoints_img": _tolist(uv),
                    "bbox": [float(uv[:, 0].min()), float(uv[:, 1].min()), 0.5, 300.0] if degenerate else _bbox(uv),
                }
            )
            if not no_fit:
                fits[str(ann_id)] = {
                    "pose": _tolist(pose.reshape(-1)),
                    "shape": _tolist(np.where(np.arange(10) == 2, np.nan, shape) if nan_fit else shape),
                    "trans": _tolist(trans),
                }
            if closest and not (no_fit or degenerate or nan_fit):
                manifest["train"] += 1
                manifest["bad_fit_train"] += int(bad_fit)
    _dump(root / "data" / "MuCo-3DHP.json", {"images": images, "annotations": annotations})
    _dump(root / "data" / "smpl_param.json", fits)
    return manifest


def _write_amass_sequence(path: Path, rng, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    poses = rng.normal(0, 0.25, (count, 156))
    np.savez(
        path,
        poses=poses,
        trans=rng.normal(0, 1, (count, 3)),
        betas=rng.normal(0, 1, 16),
        gender=np.array("neutral"),
        dmpls=np.zeros((count, 8)),
        mocap_framerate=np.array(120.0),
    )


def write_amass(root: Path, rng) -> dict:
    """CMU (kept by both models, step 60), BMLrub (PoseNet only, step 10), KIT (never).

    CMU's first sequence folder holds two trials and a second folder one more, written with a
    generator of their own (the datasets written after this one are unchanged); debug mode
    reads the first folder only. The first trial's betas exceed 3 (AMASS has no shape clamp).
    """
    frames = {"CMU": 121, "BMLrub": 25, "KIT": 10}
    for subset, count in frames.items():
        path = root / "data" / subset / "01" / "01_01_poses.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        poses = rng.normal(0, 0.25, (count, 156))
        trans = rng.normal(0, 1, (count, 3))
        betas = rng.normal(0, 1, 16)
        if subset == "CMU":
            betas[0] = 3.5
        np.savez(
            path,
            poses=poses,
            trans=trans,
            betas=betas,
            gender=np.array("neutral"),
            dmpls=np.zeros((count, 8)),
            mocap_framerate=np.array(120.0),
        )
    own_rng = np.random.default_rng(5151)
    _write_amass_sequence(root / "data" / "CMU" / "01" / "01_02_poses.npz", own_rng, 61)
    _write_amass_sequence(root / "data" / "CMU" / "02" / "02_01_poses.npz", own_rng, 1)
    first_folder = len(range(0, 121, 60)) + len(range(0, 61, 60))
    cmu, bml = first_folder + 1, len(range(0, 25, 10))
    return {"train_pose2mesh": 4 * cmu, "train_posenet": 4 * (cmu + bml), "train_debug_pose2mesh": 4 * first_folder}


def write_surreal(root: Path, bodies: Bodies, rng) -> dict:
    manifest = {}
    for split, count in (("train", 6), ("val", 5)):
        images, annotations, detections = [], [], []
        for index in range(count):
            image_id = 10 * index + 3
            focal, princpt = [600.0, 600.0], [160.0, 120.0]
            images.append(
                {
                    "id": image_id,
                    "file_name": f"{split}/run0/seq/{index:05d}.jpg",
                    "width": 320,
                    "height": 240,
                    "cam_param": {"focal": focal, "princpt": princpt},
                }
            )
            gender = ("male", "female")[index % 2]  # as the real files spell them
            pose = _smpl_pose(rng, root=np.array([np.pi, 0, 0]) + rng.normal(0, 0.2, 3))
            shape, trans = rng.normal(0, 1.0, 10), np.array([0.0, 0.0, 5.0]) + rng.normal(0, 0.1, 3)
            _, fk = bodies.smpl_forward(pose, shape, trans, gender)
            uv = _project(fk, focal, princpt)
            for extra in range(2 if index == 0 else 1):  # a second annotation that must be ignored
                annotations.append(
                    {
                        "id": 500 + 10 * index + extra,
                        "image_id": image_id,
                        "bbox": _bbox(uv),
                        "smpl_param": {
                            "pose": _tolist(pose.reshape(-1)),
                            "shape": _tolist(shape),
                            "trans": _tolist(trans),
                            "gender": gender,
                        },
                        "joint_cam": _tolist(fk * 1000),
                    }
                )
            detections.append(
                {
                    "image_id": image_id,
                    "annotation_id": 500 + 10 * index,
                    "keypoints": _tolist(np.concatenate([uv + rng.normal(0, 1.0, uv.shape), np.ones((24, 1))], 1)),
                }
            )
        if split == "val":  # a copy of the last image whose box is 0.5 px wide: dropped
            images.append({**images[-1], "id": images[-1]["id"] + 1000})
            annotations.append({**annotations[-1], "id": annotations[-1]["id"] + 1000,
                                "image_id": images[-1]["id"], "bbox": [5.0, 5.0, 0.5, 40.0]})
            detections.append({**detections[-1], "image_id": images[-1]["id"],
                               "annotation_id": annotations[-1]["id"]})
            manifest["skipped_test"] = {"invalid bounding box": 1}
        _dump(root / "data" / f"{split}.json", {"images": images[::-1], "annotations": annotations})
        _dump(root / "data" / f"hrnet_output_on_{split}set.json", detections)
        manifest["train" if split == "train" else "test"] = count
    return manifest


def write_freihand(root: Path, bodies: Bodies, rng) -> dict:
    manifest = {"train": 0, "test": 0, "skipped_train": {"invalid bounding box": 1}}
    for split, count in (("train", 7), ("eval", 4)):
        images, annotations, detections, db = [], [], [], {}
        for index in range(count):
            image_id, db_idx = 700 + index, 30 + index
            focal, princpt = [480.0, 481.0], [112.0, 112.0]
            pose = rng.normal(0, 0.2, (16, 3))
            if index == 1:
                pose[0] = 0.0  # zero root rotation
            shape, t = rng.normal(0, 1.0, 10), np.array([0.0, 0.0, 2.0])
            rotation = _rotation(rng.normal(0, 0.5, 3))
            composed = pose.copy()
            from scipy.spatial.transform import Rotation

            composed[0] = Rotation.from_matrix(rotation @ _rotation(pose[0])).as_rotvec()
            _, joints = bodies.mano_forward(composed, shape, t)
            uv = _project(joints, focal, princpt)
            images.append(
                {
                    "id": image_id,
                    "file_name": f"{'training' if split == 'train' else 'evaluation'}/rgb/{db_idx:08d}.jpg",
                    "width": 224,
                    "height": 224,
                    "db_idx": db_idx,
                }
            )
            degenerate = split == "train" and index == 3
            annotations.append(
                {
                    "id": 9000 + index,
                    "image_id": image_id,
                    "bbox": [5.0, 5.0, 0.5, 40.0] if degenerate else _bbox(uv),
                }
            )
            detections.append(
                {
                    "image_id": image_id,
                    "annotation_id": 9000 + index,
                    "keypoints": _tolist(np.concatenate([uv + rng.normal(0, 1.0, uv.shape), np.ones((21, 1))], 1)),
                }
            )
            if split == "train":
                db[str(db_idx)] = {
                    "cam_param": {"R": _tolist(rotation), "t": _tolist(t), "focal": focal, "princpt": princpt},
                    "mano_param": {"pose": _tolist(pose.reshape(-1)), "shape": _tolist(shape)},
                    "joint_3d": _tolist(joints),
                }
                manifest["train"] += int(not degenerate)
            else:
                db[str(db_idx)] = {"cam_param": {"focal": focal, "princpt": princpt}, "scale": 0.08}
                manifest["test"] += 1
        _dump(root / "data" / f"freihand_{split}_coco.json", {"images": images, "annotations": annotations})
        _dump(root / "data" / f"freihand_{split}_data.json", db)
        _dump(root / "data" / f"hrnet_output_on_{'train' if split == 'train' else 'test'}set.json", detections)
    return manifest


def write_regressors(data_dir: Path, num_vertices: int, rng) -> None:
    """``J_regressor_h36m_correct.npy`` (17, V) and ``J_regressor_coco.npy`` (17, V): rows of
    sparse convex weights; COCO rows 0-4 one-hot (the face keypoints are single vertices)."""
    h36m = _sparse_regressor(rng, 17, num_vertices, 5)
    coco = _sparse_regressor(rng, 17, num_vertices, 6)
    coco[:5] = 0
    coco[np.arange(5), rng.choice(num_vertices, 5, replace=False)] = 1.0
    (data_dir / "Human36M").mkdir(parents=True, exist_ok=True)
    (data_dir / "COCO").mkdir(parents=True, exist_ok=True)
    np.save(data_dir / "Human36M" / "J_regressor_h36m_correct.npy", h36m)
    np.save(data_dir / "COCO" / "J_regressor_coco.npy", coco)


def write_fixtures(
    out_dir: str | Path, smpl_dir: str | Path | None = None, mano_dir: str | Path | None = None, seed: int = 0
) -> dict:
    """Write every fixture under ``out_dir`` (see the module docstring); returns the manifest."""
    out_dir = Path(out_dir)
    if smpl_dir is None or mano_dir is None:
        smpl_dir, mano_dir = write_fake_models(out_dir)
    from pose2mesh.body_models.legacy_pickle import load_legacy_pickle
    from pose2mesh.body_models.smplx_models import smpl_model_path

    data_dir = out_dir / "data"
    rng = np.random.default_rng(seed)
    num_vertices = len(load_legacy_pickle(smpl_model_path(smpl_dir, "neutral"))["v_template"])
    write_regressors(data_dir, num_vertices, rng)
    bodies = Bodies(Path(smpl_dir), Path(mano_dir), data_dir)
    manifest = {
        "smpl_dir": str(smpl_dir),
        "mano_dir": str(mano_dir),
        "data_dir": str(data_dir),
        "Human36M": write_human36m(data_dir / "Human36M", bodies, rng),
        "PW3D": write_pw3d(data_dir / "PW3D", bodies, rng),
        "COCO": write_coco(data_dir / "COCO", bodies, rng),
        "MuCo": write_muco(data_dir / "MuCo", bodies, rng),
        "AMASS": write_amass(data_dir / "AMASS", rng),
        "SURREAL": write_surreal(data_dir / "SURREAL", bodies, rng),
        "FreiHAND": write_freihand(data_dir / "FreiHAND", bodies, rng),
    }
    _dump(out_dir / "fixture_manifest.json", manifest)
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "out_dir", help="folder to write data/, smplpytorch/, manopth/ and fixture_manifest.json into"
    )
    parser.add_argument("--smpl_dir", default=None, help="existing SMPL model folder (default: write fake models)")
    parser.add_argument("--mano_dir", default=None, help="existing MANO model folder (default: write fake models)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = write_fixtures(args.out_dir, args.smpl_dir, args.mano_dir, seed=args.seed)
    print(f"fixtures written to {Path(args.out_dir).absolute()}")
    print(json.dumps({k: v for k, v in manifest.items() if isinstance(v, dict)}, indent=1))


if __name__ == "__main__":
    main()
