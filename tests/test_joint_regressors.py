"""The shipped anny joint regressors (asset/joint_regressors, made by
tools/fit_joint_regressors.py) against the rig-joint definitions they were fitted to."""
import numpy as np
import pytest
import torch

from pose2mesh.body_models.regressor_asset import (
    DEFAULT_ASSET_DIR,
    load_regressor_asset,
    regressor_asset_path,
)
from pose2mesh.body_models.rig_joints import (
    RigJointRegressor,
    posed_vertices_and_bone_heads,
    rig_joint_definitions,
)
from pose2mesh.datasets.pose_prior import BodyPosePrior, HandPosePrior, sample_phenotypes
from pose2mesh.joint_sets import get_joint_set

ASSETS = [("anny_body", "default", "human36"), ("anny_body", "default", "coco"),
          ("anny_body", "default", "smpl"), ("anny_hand", "hand", "mano")]
MAX_SUPPORT = 32


def asset(topology: str, joint_set_name: str):
    return load_regressor_asset(regressor_asset_path(DEFAULT_ASSET_DIR, topology, joint_set_name))


@pytest.mark.parametrize("model_fixture, topology, joint_set_name", ASSETS)
def test_asset_is_a_sparse_convex_regressor(model_fixture, topology, joint_set_name, request):
    model = request.getfixturevalue(model_fixture)
    path = regressor_asset_path(DEFAULT_ASSET_DIR, topology, joint_set_name)
    assert path.stat().st_size < 64 * 1024
    with np.load(path) as raw:
        assert raw["data"].dtype == np.float32
    loaded = asset(topology, joint_set_name)
    joint_set = get_joint_set(joint_set_name)
    matrix = loaded.matrix
    assert matrix.shape == (joint_set.num_joints, model.num_vertices)
    assert loaded.joint_names == joint_set.joint_names
    assert (matrix >= 0).all()
    assert torch.allclose(matrix.sum(dim=1), torch.ones(len(matrix)), atol=1e-5)
    assert ((matrix > 0).sum(dim=1) <= MAX_SUPPORT).all()
    assert 0 < loaded.mean_err_mm < 10 and loaded.mean_err_mm <= loaded.max_err_mm


def test_coco_pelvis_and_neck_are_means():
    matrix = asset("default", "coco").matrix
    names = get_joint_set("coco").joint_names
    row = {name: matrix[i] for i, name in enumerate(names)}
    assert torch.allclose(row["Pelvis"], (row["L_Hip"] + row["R_Hip"]) / 2, atol=1e-7)
    assert torch.allclose(row["Neck"], (row["L_Shoulder"] + row["R_Shoulder"]) / 2, atol=1e-7)


def test_every_joint_has_a_definition():
    for joint_set_name in ("human36", "coco", "smpl", "mano"):
        definitions = rig_joint_definitions(joint_set_name)
        assert len(definitions) == get_joint_set(joint_set_name).num_joints
        assert {joint.kind for joint in definitions} <= {"bones", "landmark", "crown", "tip"}


@pytest.mark.parametrize("model_fixture, topology, joint_set_name, bound_mm", [
    ("anny_body", "default", "human36", 15.0), ("anny_body", "default", "coco", 15.0),
    ("anny_body", "default", "smpl", 15.0), ("anny_hand", "hand", "mano", 5.0),
])
def test_regressed_joints_match_rig_joints(model_fixture, topology, joint_set_name, bound_mm,
                                           request):
    """On fresh samples (a seed the fit never used), through the body model's own API."""
    model = request.getfixturevalue(model_fixture)
    prior = (HandPosePrior if joint_set_name == "mano" else BodyPosePrior)(model.bone_labels)
    generator = torch.Generator().manual_seed(987654)
    pose = prior.sample(32, generator)
    phenotype = sample_phenotypes(32, generator)
    with torch.no_grad():
        vertices, heads = posed_vertices_and_bone_heads(model, pose, phenotype)
        assert torch.allclose(vertices, model(pose_aa=pose, phenotype=phenotype), atol=1e-5)
        regressed = model.regress_joints(vertices, joint_set_name)
        target = RigJointRegressor(model, joint_set_name)(vertices, heads)
    error_mm = 1000 * (regressed - target).norm(dim=-1)
    assert error_mm.mean() < bound_mm, error_mm.mean(dim=0)
    assert error_mm.max() < 8 * bound_mm
