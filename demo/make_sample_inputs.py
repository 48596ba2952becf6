"""Write the demo's sample 2D inputs: anny bodies (and a right hand) in key poses of the pose
prior, seen by a fixed virtual pinhole camera; the joints are regressed from the meshes with
the project's anny joint regressors and projected to pixels. Deterministic; renders nothing.

    python demo/make_sample_inputs.py [--out_dir demo/sample_inputs]

Files:
  sample_human36.npy        (17, 2) float32 pixels, human36 order, one person (walking)
  sample_coco_results.json  COCO keypoint results, two people in one image; the second
                            person's left wrist is marked undetected (v = 0) as a detector
                            would report an occluded joint
  sample_openpose.json      the same two people in OpenPose BODY_25 layout
  sample_mano.npy           (21, 3) float32 [x, y, confidence], right hand, mano order
  real_motion_human36.npy   (17, 2) one frame of the real-motion test split (CMU subject
                            006, never trained on), human36 order, centred in its picture
  real_motion_coco.json     COCO keypoint results, three people in frames of that split
The virtual image is 960 x 720 pixels for the bodies and 640 x 640 for the hand.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from pose2mesh.body_models import build_body_model
from pose2mesh.datasets.pose_prior import PHENOTYPE_LABELS, BodyPosePrior, HandPosePrior
from pose2mesh.joint_sets import get_joint_set

BODY_IMAGE_WH = (960, 720)
HAND_IMAGE_WH = (640, 640)
BODY_FOCAL_PX = 1100.0
HAND_FOCAL_PX = 900.0
# (key pose, yaw degrees about the vertical, x offset metres (subject's left +), phenotype).
BODY_PEOPLE = (
    ("walk_contact", 20.0, 0.0, {"gender": 0.8, "age": 0.8, "height": 0.45}),
    ("reaching_up", -25.0, 1.0, {"gender": 0.2, "age": 0.82, "height": 0.3, "weight": 0.6}),
)
HAND_POSE = "point"
# Rows of the real-motion test split (mocap library, subject 006) and x offsets (metres).
REAL_MOTION_ROWS = ((700, 0.0), (200, -1.1), (1200, 1.1))
MISSING_COCO_JOINT = ("L_Wrist", 1)  # (joint, person) reported undetected in the JSON files
# OpenPose BODY_25 keypoints; names shared with the coco joint set, Neck and MidHip (Pelvis).
BODY_25 = ("Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow",
           "L_Wrist", "MidHip", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle",
           "R_Eye", "L_Eye", "R_Ear", "L_Ear", "L_BigToe", "L_SmallToe", "L_Heel", "R_BigToe",
           "R_SmallToe", "R_Heel")


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """World-to-camera rotation (rows: right, down, forward; OpenCV) of a camera at ``eye``
    looking at ``target`` with ``up`` pointing up in the picture."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(forward, right), forward])


def project(points_m: np.ndarray, rotation: np.ndarray, eye: np.ndarray, focal_px: float,
            image_wh) -> np.ndarray:
    """(..., 3) world points -> (..., 2) pixels; principal point at the image centre."""
    cam = (points_m - eye) @ rotation.T
    return cam[..., :2] / cam[..., 2:3] * focal_px + 0.5 * (np.asarray(image_wh) - 1.0)


def body_joints(body, names: tuple[str, ...], real_motion: bool = False) -> dict[str, np.ndarray]:
    """{joint set: (P, J, 3) world joints (metres, z up)} of the anny ``body`` for
    :data:`BODY_PEOPLE`, or with ``real_motion`` for :data:`REAL_MOTION_ROWS` (average adult
    phenotypes)."""
    if real_motion:
        from pose2mesh.mocap.library import load_pose_library

        rows = np.array([row for row, _ in REAL_MOTION_ROWS])
        pose = load_pose_library().split("test").full_poses(body.bone_labels, rows)
        phenotype = body.zero_params(len(rows))["phenotype"]
        phenotype[:, PHENOTYPE_LABELS.index("age")] = 0.8
        transl = torch.tensor([[x, 0.0, 0.0] for _, x in REAL_MOTION_ROWS])
    else:
        prior = BodyPosePrior(body.bone_labels)
        pose = torch.stack([prior.key_pose(name) for name, *_ in BODY_PEOPLE])
        pose[:, 0, 2] += torch.deg2rad(torch.tensor([yaw for _, yaw, _, _ in BODY_PEOPLE]))
        phenotype = body.zero_params(len(BODY_PEOPLE))["phenotype"]
        for row, (*_, values) in enumerate(BODY_PEOPLE):
            for label, value in values.items():
                phenotype[row, PHENOTYPE_LABELS.index(label)] = value
        transl = torch.tensor([[x, 0.0, 0.0] for _, _, x, _ in BODY_PEOPLE])
    with torch.no_grad():
        vertices = body(pose_aa=pose, phenotype=phenotype, transl_m=transl).vertices_m
        return {name: body.regress_joints(vertices, name).numpy().astype(np.float64)
                for name in names}


def hand_joints() -> np.ndarray:
    """(21, 3) world joints (metres) of the anny right hand in :data:`HAND_POSE`."""
    hand = build_body_model("anny_hand")
    pose = HandPosePrior(hand.bone_labels).key_pose(HAND_POSE)[None]
    with torch.no_grad():
        return hand.regress_joints(hand(pose_aa=pose).vertices_m, "mano")[0].numpy().astype(np.float64)


def body_pixels(joints_m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{joint set: (P, J, 2) pixels} of :func:`body_joints` seen by :func:`body_camera`."""
    rotation, eye = body_camera(joints_m["human36"])
    return {name: project(joints, rotation, eye, BODY_FOCAL_PX, BODY_IMAGE_WH)
            for name, joints in joints_m.items()}


def centred(person_px: np.ndarray) -> np.ndarray:
    """(J, 2) float32 pixels of one person moved to the centre of its own picture."""
    return (person_px + 0.5 * np.asarray(BODY_IMAGE_WH) - person_px.mean(0)).astype(np.float32)


def body_camera(joints_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A camera 5.5 m in front of the group (-y is the bodies' front), 25 cm above its centre."""
    centre = joints_m.reshape(-1, 3).mean(0)
    eye = centre + np.array([0.0, -5.5, 0.25])
    return look_at(eye, centre, np.array([0.0, 0.0, 1.0])), eye


def hand_camera(joints_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A camera 0.45 m from the hand along its palm normal, fingers up in the picture."""
    mano = get_joint_set("mano")
    wrist, middle, index, pinky = (joints_m[mano.index(n)] for n in
                                   ("Wrist", "Middle_1", "Index_1", "Pinky_1"))
    up = (middle - wrist) / np.linalg.norm(middle - wrist)
    normal = np.cross(index - pinky, up)
    normal /= np.linalg.norm(normal)
    centre = joints_m.mean(0)
    eye = centre + 0.45 * normal
    return look_at(eye, centre, up), eye


def coco_results(coco19_px: np.ndarray, missing: np.ndarray) -> list[dict]:
    """COCO keypoint-results entries (image 1) for (P, 19, 2) pixels; ``missing`` (P, 17)."""
    results = []
    for person, (points, gone) in enumerate(zip(coco19_px[:, :17], missing)):
        triples = [[0.0, 0.0, 0] if g else [round(float(x), 2), round(float(y), 2), 2]
                   for (x, y), g in zip(points, gone)]
        results.append({"image_id": 1, "category_id": 1,
                        "keypoints": [v for t in triples for v in t],
                        "score": round(0.97 - 0.05 * person, 2)})
    return results


def openpose_people(coco19_px: np.ndarray, missing: np.ndarray) -> dict:
    """OpenPose BODY_25 JSON for (P, 19, 2) pixels; ``missing`` (P, 17) COCO keypoints and
    the feet keypoints (not in the coco set) are undetected: zeros."""
    coco = get_joint_set("coco")
    people = []
    for points, gone in zip(coco19_px, missing):
        gone = np.concatenate([gone, [False, False]])  # Pelvis, Neck
        body25 = np.zeros((len(BODY_25), 3))
        for op_index, name in enumerate(BODY_25):
            name = "Pelvis" if name == "MidHip" else name
            if name in coco.joint_names and not gone[coco.index(name)]:
                body25[op_index] = (*points[coco.index(name)], 0.9)
        people.append({"person_id": [-1],
                       "pose_keypoints_2d": [round(float(v), 3) for v in body25.reshape(-1)]})
    return {"version": 1.3, "people": people}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out_dir", default=str(Path(__file__).resolve().parent / "sample_inputs"))
    out_dir = Path(parser.parse_args(argv).out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    body = build_body_model("anny")
    pixels = body_pixels(body_joints(body, ("human36", "coco")))
    # The single-person sample shows the first person centred in its own picture.
    np.save(out_dir / "sample_human36.npy", centred(pixels["human36"][0]))
    missing = np.zeros((len(BODY_PEOPLE), 17), dtype=bool)
    joint, person = MISSING_COCO_JOINT
    missing[person, get_joint_set("coco").index(joint)] = True
    (out_dir / "sample_coco_results.json").write_text(json.dumps(coco_results(pixels["coco"], missing)))
    (out_dir / "sample_openpose.json").write_text(json.dumps(openpose_people(pixels["coco"], missing)))

    pixels = body_pixels(body_joints(body, ("human36", "coco"), real_motion=True))
    np.save(out_dir / "real_motion_human36.npy", centred(pixels["human36"][0]))
    none_missing = np.zeros((len(REAL_MOTION_ROWS), 17), dtype=bool)
    (out_dir / "real_motion_coco.json").write_text(json.dumps(coco_results(pixels["coco"], none_missing)))

    hand = hand_joints()
    rotation, eye = hand_camera(hand)
    hand_px = project(hand, rotation, eye, HAND_FOCAL_PX, HAND_IMAGE_WH)
    hand_conf = np.concatenate([hand_px, np.ones((len(hand_px), 1))], axis=1)
    np.save(out_dir / "sample_mano.npy", hand_conf.astype(np.float32))
    for path in sorted(out_dir.iterdir()):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
