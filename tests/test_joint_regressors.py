"""The shipped anny joint regressors (asset/joint_regressors, made by
tools/fit_joint_regressors.py) against the rig-joint definitions they were fitted to, on
every shipped topology (default body, ``notoes``, ``notoes_collapse10pc``, right hand)."""
import numpy as np
import pytest
import torch

from pose2mesh.assets import JOINT_REGRESSOR_DIR
from pose2mesh.body_models import build_body_model
from pose2mesh.body_models.regressor_asset import load_regressor_asset, regressor_asset_path
from pose2mesh.body_models.rig_joints import (
    BODY_JOINT_SETS,
    RigJointRegressor,
    closest_surface_points,
    rig_joint_definitions,
)
from pose2mesh.datasets.pose_prior import BodyPosePrior, HandPosePrior, sample_phenotypes
from pose2mesh.joint_sets import get_joint_set

BODY_TOPOLOGIES = {"default": 13718, "notoes": 12272, "notoes_collapse10pc": 1229}
"""Shipped body topologies -> vertex count."""
ASSETS = [(topology, name) for topology in BODY_TOPOLOGIES for name in BODY_JOINT_SETS]
ASSETS.append(("hand", "mano"))
MAX_SUPPORT = 32


@pytest.fixture(scope="module")
def anny_topology(anny_body, anny_hand):
    """topology -> anny model ("hand" = the right hand), each built once."""
    models = {"default": anny_body, "hand": anny_hand}

    def get(topology: str):
        if topology not in models:
            models[topology] = build_body_model("anny", topology=topology)
        return models[topology]

    return get


def asset(topology: str, joint_set_name: str):
    return load_regressor_asset(regressor_asset_path(JOINT_REGRESSOR_DIR, topology, joint_set_name))


@pytest.mark.parametrize("topology, joint_set_name", ASSETS)
def test_asset_is_a_sparse_convex_regressor(topology, joint_set_name, anny_topology):
    model = anny_topology(topology)
    path = regressor_asset_path(JOINT_REGRESSOR_DIR, topology, joint_set_name)
    assert path.stat().st_size < 64 * 1024
    with np.load(path) as raw:
        assert raw["data"].dtype == np.float32
    loaded = asset(topology, joint_set_name)
    joint_set = get_joint_set(joint_set_name)
    matrix = loaded.matrix
    assert matrix.shape == (joint_set.num_joints, model.num_vertices)
    if topology in BODY_TOPOLOGIES:
        assert model.num_vertices == BODY_TOPOLOGIES[topology]
    assert loaded.joint_names == joint_set.joint_names
    assert (matrix >= 0).all()
    assert torch.allclose(matrix.sum(dim=1), torch.ones(len(matrix)), atol=1e-5)
    assert ((matrix > 0).sum(dim=1) <= MAX_SUPPORT).all()
    assert 0 < loaded.mean_err_mm < 10 and loaded.mean_err_mm <= loaded.max_err_mm
    # Through the body model's own API too (what the quick start and training use).
    torch.testing.assert_close(model.joint_regressor(joint_set_name), matrix)


@pytest.mark.parametrize("topology", BODY_TOPOLOGIES)
def test_coco_pelvis_and_neck_are_means(topology):
    matrix = asset(topology, "coco").matrix
    names = get_joint_set("coco").joint_names
    row = {name: matrix[i] for i, name in enumerate(names)}
    assert torch.allclose(row["Pelvis"], (row["L_Hip"] + row["R_Hip"]) / 2, atol=1e-7)
    assert torch.allclose(row["Neck"], (row["L_Shoulder"] + row["R_Shoulder"]) / 2, atol=1e-7)


def test_every_joint_has_a_definition():
    for joint_set_name in ("human36", "coco", "smpl", "mano"):
        definitions = rig_joint_definitions(joint_set_name)
        assert len(definitions) == get_joint_set(joint_set_name).num_joints
        assert {joint.kind for joint in definitions} <= {"bones", "landmark", "crown", "tip"}


def test_closest_surface_points_of_one_triangle():
    vertices = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    points = torch.tensor([[0.25, 0.25, 0.3],  # above the inside: plane projection
                           [2.0, -1.0, 0.0],  # beyond corner 1
                           [0.0, 0.5, -1.0],  # below edge 0-2
                           [1.0, 1.0, 0.0],  # off edge 1-2 (hypotenuse)
                           [-1.0, -1.0, 5.0]], dtype=torch.float64)  # beyond corner 0
    corners, barycentric = closest_surface_points(points, vertices, faces)
    assert (corners == faces).all()
    expected = torch.tensor([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5],
                             [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(barycentric, expected)


def test_closest_surface_points_of_mesh_vertices_are_themselves(anny_hand):
    vertices = anny_hand.rest_vertices_m.double()
    picked = torch.arange(0, anny_hand.num_vertices, 7)
    corners, barycentric = closest_surface_points(vertices[picked], vertices, anny_hand.faces)
    points = (barycentric[:, :, None] * vertices[corners]).sum(dim=1)
    torch.testing.assert_close(points, vertices[picked], atol=1e-9, rtol=0)


@pytest.mark.parametrize("topology", ["notoes", "notoes_collapse10pc"])
def test_landmarks_carry_over_to_other_topologies(topology, anny_topology, anny_body):
    """Vertex landmarks of a retopologised body: convex blends of its own vertices, at the
    default mesh's landmarks in the rest pose (phenotype 0.5) up to its surface's offset."""
    model = anny_topology(topology)
    for joint_set_name in ("human36", "coco"):
        rig = RigJointRegressor(model, joint_set_name, reference_model=anny_body)
        reference = RigJointRegressor(anny_body, joint_set_name)
        landmark = reference.vertex_weights.sum(dim=1) > 0
        assert landmark.any() and rig.vertex_weights.shape == (len(landmark), model.num_vertices)
        assert (rig.vertex_weights >= 0).all()
        torch.testing.assert_close(rig.vertex_weights.sum(dim=1), landmark.float())
        torch.testing.assert_close(rig.bone_weights, reference.bone_weights)
        gap_mm = 1000 * (rig.vertex_weights[landmark] @ model.rest_vertices_m
                         - reference.vertex_weights[landmark] @ anny_body.rest_vertices_m)
        assert gap_mm.norm(dim=-1).max() < (0.5 if topology == "notoes" else 2.0)


@pytest.mark.parametrize("topology, joint_set_name, bound_mm", [
    *[(topology, name, 15.0) for topology, name in ASSETS if topology != "hand"],
    ("hand", "mano", 5.0),
])
def test_regressed_joints_match_rig_joints(topology, joint_set_name, bound_mm, anny_topology,
                                           anny_body):
    """On fresh samples (a seed the fit never used), through the body model's own API."""
    model = anny_topology(topology)
    prior = (HandPosePrior if joint_set_name == "mano" else BodyPosePrior)(model.bone_labels)
    generator = torch.Generator().manual_seed(987654)
    pose = prior.sample(32, generator)
    phenotype = sample_phenotypes(32, generator)
    with torch.no_grad():
        output = model(pose_aa=pose, phenotype=phenotype)
        vertices, heads = output.vertices_m, output.joints_m
        regressed = model.regress_joints(vertices, joint_set_name)
        reference = None if topology == "hand" else anny_body
        target = RigJointRegressor(model, joint_set_name, reference)(vertices, heads)
    error_mm = 1000 * (regressed - target).norm(dim=-1)
    assert error_mm.mean() < bound_mm, error_mm.mean(dim=0)
    assert error_mm.max() < 8 * bound_mm
