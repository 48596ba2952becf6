"""The anny body fit (pose2mesh.body_fit): closed-form initialisation and refinement on real
anny bodies, and the parameter file the demo writes with it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import roma
import torch

from pose2mesh.body_fit import FIT_BONES, AnnyBodyFitter
from pose2mesh.datasets.pose_prior import BodyPosePrior, sample_phenotypes
from pose2mesh.rotations import compose_root_rotation


@pytest.fixture(scope="module")
def small_body():
    from pose2mesh.body_models.anny_model import build_anny_body

    return build_anny_body("notoes_collapse10pc")


def _bodies(small_body, count=6, seed=0):
    """Root-relative (pelvis) anny meshes of mocap-like poses (prior key poses), random
    phenotypes and random global rotations; with their pose parameters."""
    generator = torch.Generator().manual_seed(seed)
    prior = BodyPosePrior(small_body.bone_labels)
    pose = prior.sample(count, generator=generator, key_pose_prob=1.0, noise_deg=8.0)
    keep = torch.zeros(len(small_body.bone_labels), dtype=torch.bool)
    keep[[small_body.bone_labels.index(b) for b in FIT_BONES]] = True
    pose = pose * keep[:, None]  # only the bones the fit moves
    pose = compose_root_rotation(pose, roma.random_rotmat(count, generator=generator))
    phenotype = sample_phenotypes(count, generator=generator)
    with torch.no_grad():
        mesh = small_body(pose_aa=pose, phenotype=phenotype)
        mesh = mesh - small_body.regress_joints(mesh, "human36")[:, :1]
    return mesh, pose, phenotype


def test_initial_pose_points_every_limb_segment_at_the_target(small_body):
    mesh, _, _ = _bodies(small_body)
    fitter = AnnyBodyFitter(small_body)
    target_joints = small_body.regress_joints(mesh, "human36")
    with torch.no_grad():
        init = fitter.initial_pose(target_joints)
        init_mesh = small_body(pose_aa=init)
    init_joints = small_body.regress_joints(init_mesh, "human36")
    names = fitter.joint_names
    for start, end in (("L_Hip", "L_Knee"), ("R_Knee", "R_Ankle"), ("L_Shoulder", "L_Elbow"),
                       ("R_Elbow", "R_Wrist"), ("Pelvis", "Torso")):
        a = init_joints[:, names.index(end)] - init_joints[:, names.index(start)]
        b = target_joints[:, names.index(end)] - target_joints[:, names.index(start)]
        cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)
        # Joint regressors are not bone heads, so the directions agree closely, not exactly.
        assert cosine.min().item() > 0.97, (start, end, cosine)


def test_refinement_recovers_real_bodies(small_body, anny_body):
    mesh, _, phenotype = _bodies(small_body, count=6, seed=1)
    no_refinement = AnnyBodyFitter(small_body, iterations=0)(mesh)
    fitter = AnnyBodyFitter(small_body, anny_body, iterations=60)
    fit = fitter(mesh)
    assert fit.vertices_m.shape == (6, anny_body.num_vertices, 3)
    assert fit.fit_vertices_m.shape == mesh.shape
    assert ((fit.phenotype >= 0) & (fit.phenotype <= 1)).all()
    # From ~5-8 cm after the closed-form start to about a centimetre.
    assert no_refinement.vertex_error_mm.mean() > 35.0
    assert fit.vertex_error_mm.mean() < 0.4 * no_refinement.vertex_error_mm.mean()
    assert fit.vertex_error_mm.max() < 25.0
    # The full-resolution body is the same body: its joints match the small one's.
    small_joints = small_body.regress_joints(fit.fit_vertices_m, "human36")
    full_joints = anny_body.regress_joints(fit.vertices_m, "human36")
    assert (small_joints - full_joints).norm(dim=-1).mean() < 0.012
    # Only the fitted bones move.
    others = [i for i, b in enumerate(small_body.bone_labels) if b not in FIT_BONES]
    assert fit.pose_aa[:, others].abs().max() == 0
