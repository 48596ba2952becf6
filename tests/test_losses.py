"""Losses: hand-computed values on a single triangle and a tetrahedron, masking semantics and
the combined criterion."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pose2mesh.config import get_default_config
from pose2mesh.losses import MeshLoss, Pose2MeshCriterion, masked_l1, unique_edges

TRIANGLE = np.array([[0, 1, 2]])
GT_TRIANGLE = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # normal +z
PRED_TRIANGLE = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])

TETRAHEDRON = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
TETRA_VERTS = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def test_masked_l1_counts_masked_entries_in_the_denominator():
    pred = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    target = torch.zeros_like(pred)
    # only the first row is valid: (1 + 2 + 3) / 6 elements = 1
    assert masked_l1(pred, target, torch.tensor([[[1.0], [0.0]]])).item() == pytest.approx(1.0)
    assert masked_l1(pred, target).item() == pytest.approx(21 / 6)
    # a per-sample mask (B, 1, 1): sample 1 is dropped but still counted
    pred2 = torch.cat([pred, 10 * pred])
    valid = torch.tensor([1.0, 0.0]).view(2, 1, 1)
    assert masked_l1(pred2, torch.zeros_like(pred2), valid).item() == pytest.approx(21 / 12)


def test_unique_edges():
    assert unique_edges(TRIANGLE).tolist() == [[0, 1], [0, 2], [1, 2]]
    assert len(unique_edges(TETRAHEDRON)) == 6  # 12 face edges, each shared by two faces


def test_normal_loss_single_triangle_by_hand():
    # GT normal n = (0, 0, 1). Predicted unit edges:
    #   v1 - v0 = (1, 0, 1)/sqrt2   -> |cos| = 1/sqrt2
    #   v2 - v0 = (0, 1, 0)         -> |cos| = 0
    #   v2 - v1 = (-1, 1, -1)/sqrt3 -> |cos| = 1/sqrt3
    loss = MeshLoss(TRIANGLE).normal_loss(PRED_TRIANGLE, GT_TRIANGLE)
    assert loss.item() == pytest.approx((1 / math.sqrt(2) + 0 + 1 / math.sqrt(3)) / 3, rel=1e-6)
    # the GT itself, and any scaled/translated copy of it, has zero normal loss
    assert MeshLoss(TRIANGLE).normal_loss(GT_TRIANGLE * 3 + 1, GT_TRIANGLE).item() == pytest.approx(0.0)


def test_edge_loss_single_triangle_by_hand():
    # GT lengths: |01| = 1, |12| = sqrt2, |02| = 1. Predicted: sqrt2, sqrt3, 1.
    # Mean |diff| over the 3 edges = (sqrt2 - 1 + sqrt3 - sqrt2 + 0) / 3 = (sqrt3 - 1) / 3.
    loss = MeshLoss(TRIANGLE).edge_loss(PRED_TRIANGLE, GT_TRIANGLE)
    assert loss.item() == pytest.approx((math.sqrt(3) - 1) / 3, rel=1e-6)


def test_tetrahedron_scaled_by_two():
    # Edges: three of length 1 (from vertex 0), three of length sqrt2. Doubling the mesh
    # doubles every length, so each |diff| equals the GT length: mean (3 + 3 sqrt2) / 6.
    # Scaling keeps every face in its plane: zero normal loss.
    mesh_loss = MeshLoss(TETRAHEDRON)
    pred = 2 * TETRA_VERTS
    assert mesh_loss.edge_loss(pred, TETRA_VERTS).item() == pytest.approx((1 + math.sqrt(2)) / 2)
    assert mesh_loss.normal_loss(pred, TETRA_VERTS).item() == pytest.approx(0.0, abs=1e-7)
    # Per-vertex mask without vertex 3: only the edges 01, 02 (length 1) and 12 (sqrt2)
    # count, over all 6 edges in the denominator.
    valid = torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 4, 1)
    assert mesh_loss.edge_loss(pred, TETRA_VERTS, valid).item() == pytest.approx((2 + math.sqrt(2)) / 6)


def test_normal_loss_masks_whole_samples_and_faces():
    mesh_loss = MeshLoss(TRIANGLE)
    pred = torch.cat([PRED_TRIANGLE, PRED_TRIANGLE])
    gt = torch.cat([GT_TRIANGLE, GT_TRIANGLE])
    full = mesh_loss.normal_loss(PRED_TRIANGLE, GT_TRIANGLE).item()
    per_sample = torch.tensor([1.0, 0.0]).view(2, 1, 1)
    assert mesh_loss.normal_loss(pred, gt, per_sample).item() == pytest.approx(full / 2)
    per_vertex = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]]).view(2, 3, 1)
    assert mesh_loss.normal_loss(pred, gt, per_vertex).item() == pytest.approx(full / 2)


def test_gradients_are_finite_on_degenerate_edges():
    pred = TETRA_VERTS.clone()
    pred[0, 1] = pred[0, 0]  # a zero-length edge
    pred.requires_grad_(True)
    mesh_loss = MeshLoss(TETRAHEDRON)
    (mesh_loss.edge_loss(pred, TETRA_VERTS) + mesh_loss.normal_loss(pred, TETRA_VERTS)).backward()
    assert torch.isfinite(pred.grad).all()


def make_cfg():
    cfg = get_default_config()
    cfg.MODEL.normal_loss_weight, cfg.MODEL.edge_loss_weight = 0.1, 20.0
    cfg.MODEL.joint_loss_weight, cfg.TRAIN.edge_loss_start = 1e-3, 7
    return cfg


def test_criterion_terms_by_hand():
    regressor = torch.full((1, 4), 0.25)  # one joint: the mean of the four vertices
    criterion = Pose2MeshCriterion(make_cfg(), torch.from_numpy(TETRAHEDRON), regressor)
    gt = TETRA_VERTS.repeat(2, 1, 1)
    shift = torch.tensor([0.001, 0.0, 0.0])  # 1 mm along x: no normal or edge change
    outputs = {"mesh_m": (gt + shift).requires_grad_(True),
               "pose3d_mm": torch.full((2, 3, 3), 3.0, requires_grad=True)}
    batch = {
        "mesh_m": gt, "mesh_valid": torch.ones(2, 1, 1),
        "reg_pose3d_mm": criterion.regress_joints_mm(gt), "reg_pose3d_valid": torch.ones(2, 1, 1),
        "lift_pose3d_mm": torch.zeros(2, 3, 3), "lift_pose3d_valid": torch.ones(2, 3, 1),
    }
    early = criterion(outputs, batch, epoch=7)
    assert early["vertex"].item() == pytest.approx(0.001 / 3, rel=1e-4)  # x only, of 3 coordinates
    assert early["normal"].item() == pytest.approx(0.0, abs=1e-7)
    assert early["edge"].item() == pytest.approx(0.0, abs=1e-7)
    assert early["joint"].item() == pytest.approx(1.0 / 3, rel=1e-4)  # 1 mm in x
    assert early["lift"].item() == pytest.approx(3.0)
    assert early["total"].item() == pytest.approx(0.001 / 3 + 1e-3 * (1.0 / 3 + 3.0), rel=1e-5)
    early["total"].backward()
    assert outputs["mesh_m"].grad is not None and outputs["pose3d_mm"].grad is not None

    # every GT edge halved: edge loss = mean GT length / 2 = (1 + sqrt2) / 4 (metres); it is
    # reported at every epoch but joins the total only after TRAIN.edge_loss_start (7)
    batch["mesh_m"] = gt / 2
    batch["reg_pose3d_mm"] = criterion.regress_joints_mm(gt / 2)
    before, after = criterion(outputs, batch, epoch=7), criterion(outputs, batch, epoch=8)
    edge = (1 + math.sqrt(2)) / 4
    assert before["edge"].item() == pytest.approx(edge, rel=1e-5)
    assert (after["total"] - before["total"]).item() == pytest.approx(20.0 * edge, rel=1e-5)
