"""The HGN lifter: its multi-scale graphs, layers, coarse-mesh loss, registry wiring and a
learning test on held-out synthetic bodies."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.csgraph as csgraph
import torch

from pose2mesh.config import load_config
from pose2mesh.engine import builders
from pose2mesh.errors import Pose2MeshError
from pose2mesh.graph import build_mesh_hierarchy
from pose2mesh.graph.multiscale import (
    build_multiscale_graphs,
    level_adjacency,
    level_clusters,
    skeleton_adjacency,
)
from pose2mesh.joint_sets import get_joint_set
from pose2mesh.losses import CoarseMeshLoss, LifterLoss
from pose2mesh.models import HGN, PoseNet, build_model, count_parameters, load_lifter_weights
from pose2mesh.models.hgn import SemanticGraphConv
from test_engine import load_script

REPO = Path(__file__).resolve().parents[1]


def strip_mesh(columns: int) -> tuple[np.ndarray, int]:
    """A 2 x ``columns`` grid of vertices triangulated into a strip: faces (F, 3), V."""
    faces = []
    for c in range(columns - 1):
        top, bottom = c, columns + c
        faces += [(top, bottom, top + 1), (top + 1, bottom, bottom + 1)]
    return np.array(faces, dtype=np.int64), 2 * columns


@pytest.fixture(scope="module")
def strip_hierarchy():
    faces, num_vertices = strip_mesh(12)
    return faces, build_mesh_hierarchy(faces, num_vertices, levels=4)


def test_skeleton_graph_is_the_bones_of_the_joint_set():
    human36 = get_joint_set("human36")
    adjacency = skeleton_adjacency(human36)
    assert adjacency.shape == (17, 17) and np.array_equal(adjacency, adjacency.T)
    assert np.trace(adjacency) == 0 and adjacency.sum() == 2 * 16  # a tree: 16 bones
    assert adjacency[human36.index("Pelvis"), human36.index("R_Hip")] == 1
    # left/right flip pairs are not HGN edges
    assert adjacency[human36.index("L_Hip"), human36.index("R_Hip")] == 0
    assert csgraph.connected_components(adjacency)[0] == 1


def test_mesh_levels_partition_the_vertices_and_keep_their_adjacency(strip_hierarchy):
    faces, hierarchy = strip_hierarchy
    vertex_adjacency = np.zeros((hierarchy.num_vertices,) * 2, dtype=bool)
    for a, b, c in faces:
        for i, j in ((a, b), (b, c), (a, c)):
            vertex_adjacency[i, j] = vertex_adjacency[j, i] = True
    for level in range(hierarchy.num_levels):
        clusters = level_clusters(hierarchy, level)
        members = np.sort(np.concatenate(clusters))
        assert np.array_equal(members, np.arange(hierarchy.num_vertices))  # a partition
        assert all(len(cluster) <= 2 ** level for cluster in clusters)
        # two coarse nodes are adjacent exactly when some of their vertices are
        expected = np.array([[i != j and vertex_adjacency[np.ix_(a, b)].any()
                              for j, b in enumerate(clusters)] for i, a in enumerate(clusters)])
        assert np.array_equal(level_adjacency(hierarchy, level) > 0, expected), level


def test_multiscale_graphs_pick_the_nearest_levels_and_pool_cluster_means(strip_hierarchy):
    _, hierarchy = strip_hierarchy
    counts = [len(level_clusters(hierarchy, level)) for level in range(hierarchy.num_levels)]
    graphs = build_multiscale_graphs(get_joint_set("human36"), hierarchy, [counts[2], counts[1] + 1])
    assert graphs.mesh_levels == [2, 1]  # coarse to fine
    assert graphs.num_nodes == [17, counts[2], counts[1]]
    vertices = torch.randn(hierarchy.num_vertices, 3)
    for pooling, level in zip(graphs.poolings, graphs.mesh_levels):
        assert np.allclose(pooling.sum(axis=1), 1.0)
        means = torch.stack([vertices[cluster].mean(0) for cluster in level_clusters(hierarchy, level)])
        assert torch.allclose(torch.from_numpy(pooling) @ vertices, means, atol=1e-6)
    with pytest.raises(Pose2MeshError, match="same mesh level"):
        build_multiscale_graphs(get_joint_set("human36"), hierarchy, [counts[2], counts[2]])


def test_semantic_graph_conv_hand_checked_values():
    """Path graph 0-1-2, identity weights, equal edge logits: each output is the mean of the
    node and its neighbours; unequal logits reweight by their softmax."""
    adjacency = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float32)
    conv = SemanticGraphConv(2, 2, adjacency)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(2).expand(2, 2, 2))
    x = torch.tensor([[[1.0, 0.0], [4.0, 3.0], [7.0, 9.0]]])
    expected = torch.tensor([[[2.5, 1.5], [4.0, 4.0], [5.5, 6.0]]])
    assert torch.allclose(conv(x), expected)
    with torch.no_grad():
        conv.weight[1].mul_(2.0)  # neighbours' weight doubled, self unchanged
        conv.edge_logits.copy_(torch.tensor([0.0, np.log(3.0), 0.0, 0.0, 0.0, 0.0, 0.0]))
    # node 0: softmax(0, ln 3) = (1/4, 3/4): 1/4 * 1 + 3/4 * 2 * 4 = 6.25 (x), 3/4 * 2 * 3 = 4.5 (y)
    assert torch.allclose(conv(x)[0, 0], torch.tensor([6.25, 4.5]))


def hgn_config(*opts: str):
    return load_config(REPO / "asset" / "yaml" / "HGN_human36J_train_synthetic.yml", list(opts))


@pytest.fixture(scope="module")
def small_anny():
    cfg = hgn_config()
    body_model = builders.build_body_model(cfg, torch.device("cpu"))
    return body_model, builders.build_hierarchy(cfg, body_model)


@pytest.mark.parametrize("joint_set", ["human36", "coco"])
def test_hgn_shapes_stages_and_size(small_anny, joint_set):
    _, hierarchy = small_anny
    cfg = hgn_config("DATASET.input_joint_set", joint_set)
    model = build_model(cfg, joint_set, hierarchy).eval()
    num_joints = get_joint_set(joint_set).num_joints
    assert isinstance(model, HGN) and model.first_stage == [0, 0, 2]
    outputs = model(torch.randn(4, num_joints, 2))
    assert outputs["pose3d_mm"].shape == (4, num_joints, 3)
    assert outputs["coarse_mesh_mm"].shape == (4, 39 + 77, 3)  # the 1,229-vertex anny mesh's levels
    posenet = PoseNet(num_joints, hidden=1024, stages=2)
    assert count_parameters(model) < count_parameters(posenet) / 4
    with pytest.raises(Pose2MeshError, match=r"\(B, %d, 2\)" % num_joints):
        model(torch.randn(4, num_joints + 1, 2))


def test_coarse_mesh_loss_targets_are_root_relative_cluster_means(small_anny):
    body_model, hierarchy = small_anny
    joint_set = get_joint_set("human36")
    graphs = build_multiscale_graphs(joint_set, hierarchy, [48, 96])
    root_row = body_model.joint_regressor("human36")[joint_set.root]
    loss = CoarseMeshLoss(graphs.poolings, root_row)
    mesh_m = torch.randn(2, hierarchy.num_vertices, 3) * 0.3
    pooled_mm = torch.from_numpy(np.concatenate(graphs.poolings)) @ mesh_m * 1000.0
    root_mm = body_model.regress_joints(mesh_m, "human36")[:, joint_set.root] * 1000.0
    targets = loss.targets_mm(mesh_m)
    assert torch.allclose(targets, pooled_mm - root_mm[:, None], atol=1e-2)
    assert torch.allclose(loss.targets_mm(mesh_m + torch.tensor([0.5, -1.0, 2.0])), targets, atol=1e-2)
    valid = torch.ones(2, 1, 1)
    assert loss(targets, mesh_m, valid).item() < 1e-4
    assert loss(targets + 7.0, mesh_m, valid).item() == pytest.approx(7.0, abs=1e-3)
    assert loss(targets + 7.0, mesh_m, torch.tensor([[[1.0]], [[0.0]]])).item() == pytest.approx(3.5, abs=1e-3)


def test_lifter_loss_adds_the_weighted_coarse_mesh_term(small_anny):
    body_model, _ = small_anny
    cfg = hgn_config()
    loss = builders.build_loss_fn(cfg, body_model, torch.device("cpu"))
    assert isinstance(loss, LifterLoss) and loss.coarse is not None
    batch = {"lift_pose3d_mm": torch.zeros(1, 17, 3), "lift_pose3d_valid": torch.ones(1, 17, 1),
             "mesh_m": torch.zeros(1, body_model.num_vertices, 3), "mesh_valid": torch.ones(1, 1, 1)}
    outputs = {"pose3d_mm": torch.full((1, 17, 3), 2.0), "coarse_mesh_mm": torch.full((1, 116, 3), 3.0)}
    terms = loss(outputs, batch, 1)
    assert terms["lift"].item() == pytest.approx(2.0) and terms["coarse_mesh"].item() == pytest.approx(3.0)
    assert terms["total"].item() == pytest.approx(5.0)
    ablated = builders.build_loss_fn(hgn_config("MODEL.coarse_mesh_loss_weight", "0.0"), body_model, torch.device("cpu"))
    assert ablated(outputs, batch, 1)["total"].item() == pytest.approx(2.0)


def test_pose2mesh_takes_an_hgn_lifter_and_its_weights(small_anny, tmp_path):
    body_model, hierarchy = small_anny
    lifter_cfg = hgn_config()
    lifter = build_model(lifter_cfg, "human36", hierarchy)
    path = tmp_path / "hgn.pth.tar"
    torch.save({"model_state_dict": lifter.state_dict()}, path)
    cfg = hgn_config("MODEL.name", "pose2mesh_net", "MODEL.lifter", "hgn", "MODEL.posenet_pretrained", "True",
                     "MODEL.posenet_path", str(path))
    model = build_model(cfg, "human36", hierarchy).eval()
    for key, value in lifter.state_dict().items():
        assert torch.equal(model.pose_lifter.state_dict()[key], value)
    outputs = model(torch.randn(2, 17, 2))
    assert set(outputs) == {"mesh_m", "pose3d_mm", "coarse_mesh_mm"}
    assert outputs["mesh_m"].shape == (2, body_model.num_vertices, 3)
    criterion = builders.build_loss_fn(cfg, body_model, torch.device("cpu"))
    batch = {"mesh_m": torch.zeros(2, body_model.num_vertices, 3), "mesh_valid": torch.ones(2, 1, 1),
             "reg_pose3d_mm": torch.zeros(2, 17, 3), "reg_pose3d_valid": torch.ones(2, 17, 1),
             "lift_pose3d_mm": torch.zeros(2, 17, 3), "lift_pose3d_valid": torch.ones(2, 17, 1)}
    assert "coarse_mesh" in criterion(outputs, batch, 1)
    posenet_weights = tmp_path / "posenet.pth.tar"
    torch.save(PoseNet(17, hidden=64).state_dict(), posenet_weights)
    with pytest.raises(Pose2MeshError, match="do not fit the HGN"):
        load_lifter_weights(model.pose_lifter, posenet_weights)


def test_lifter_choice_is_checked_where_the_config_loads():
    with pytest.raises(Pose2MeshError, match="MODEL.lifter 'hgn' picks pose2mesh_net's first stage"):
        load_config(REPO / "asset" / "yaml" / "posenet_human36J_train_synthetic.yml", ["MODEL.lifter", "hgn"])
    with pytest.raises(Pose2MeshError, match="MODEL.lifter"):
        hgn_config("MODEL.name", "pose2mesh_net", "MODEL.lifter", "hgnn")
    with pytest.raises(Pose2MeshError, match="MODEL.hgn_hidden"):
        hgn_config("MODEL.hgn_hidden", "0")
    for name in ("HGN_human36J_train_human36", "HGN_human36J_test_human36", "HGN_human36J_test_synthetic"):
        assert load_config(REPO / "asset" / "yaml" / f"{name}.yml").MODEL.name == "hgn"


def test_hgn_learns_held_out_synthetic_bodies(tmp_path, monkeypatch, small_anny):
    """A narrow HGN trained on a few thousand synthetic bodies (the HGN config, coarse-mesh
    loss on) must lift the disjoint test split far better than the training-set mean pose;
    a model that does not learn stays near ratio 1. Then main/test.py scores the checkpoint
    with the test twin and gets the same numbers."""
    monkeypatch.chdir(tmp_path)
    small = ["MODEL.hgn_hidden", "32", "SYNTHETIC.test_size", "256"]
    load_script("train").main([
        "--cfg", str(REPO / "asset" / "yaml" / "HGN_human36J_train_synthetic.yml"), "--exp_dir", str(tmp_path / "run"),
        *small, "SYNTHETIC.train_size", "3072", "TRAIN.end_epoch", "3", "TRAIN.lr_step", "[2]",
    ])
    metrics = json.loads((tmp_path / "run" / "result" / "metrics.json").read_text())
    assert metrics["MPJPE"] < 0.7 * metrics["baseline"]["MPJPE"], metrics
    assert metrics["PA-MPJPE"] < 0.7 * metrics["baseline"]["PA-MPJPE"], metrics
    assert "coarse_mesh=" in (tmp_path / "run" / "log.txt").read_text()
    load_script("test").main(["--cfg", str(REPO / "asset" / "yaml" / "HGN_human36J_test_synthetic.yml"),
                              "--weights", str(tmp_path / "run"), "--exp_dir", str(tmp_path / "test"), *small,
                              "DATASET.use_gt_input", "False"])
    tested = json.loads((tmp_path / "test" / "result" / "metrics.json").read_text())
    assert tested["MPJPE"] == pytest.approx(metrics["MPJPE"], rel=1e-4)
