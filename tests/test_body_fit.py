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
        mesh = small_body(pose_aa=pose, phenotype=phenotype).vertices_m
        mesh = mesh - small_body.regress_joints(mesh, "human36")[:, :1]
    return mesh, pose, phenotype


def test_initial_pose_points_every_limb_segment_at_the_target(small_body):
    mesh, _, _ = _bodies(small_body)
    fitter = AnnyBodyFitter(small_body)
    target_joints = small_body.regress_joints(mesh, "human36")
    with torch.no_grad():
        init = fitter.initial_pose(target_joints)
        init_mesh = small_body(pose_aa=init).vertices_m
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


# ----------------------------------------------------------------------------- 2D keypoints
def _perturbed_network_meshes(small_body, count, seed, noise_rad=0.1):
    """True bodies (root-relative meshes, as :func:`_bodies`) and "network meshes": the same
    bodies with every fitted bone but the root turned by ~``noise_rad`` more, as a network
    that gets the limbs a little wrong would predict them."""
    mesh, pose, phenotype = _bodies(small_body, count=count, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    limbs = torch.zeros(len(small_body.bone_labels), 1)
    limbs[[small_body.bone_labels.index(b) for b in FIT_BONES[1:]]] = 1.0
    noisy = pose + noise_rad * torch.randn(pose.shape, generator=generator) * limbs
    with torch.no_grad():
        network = small_body(pose_aa=noisy, phenotype=phenotype).vertices_m
        network = network - small_body.regress_joints(network, "human36")[:, :1]
    return mesh, network


def _keypoints(small_body, mesh, joint_set, scale=250.0, offset=(320.0, 240.0)):
    """Exact weak-perspective projections ``[u, v, 1]`` of the joints of ``mesh``."""
    joints = small_body.regress_joints(mesh, joint_set)
    uv = scale * joints[..., :2] + torch.tensor(offset)
    return torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1)


def _reprojection_px(small_body, vertices, keypoints, joint_set):
    """The demo's figure: mean reprojection error of the closed-form weighted least-squares
    camera fitted to the body's joints."""
    from pose2mesh.body_fit import initial_cameras
    from pose2mesh.camera import weak_perspective_reprojection_error

    joints = small_body.regress_joints(vertices, joint_set).double()
    keypoints = keypoints.double()
    camera = initial_cameras(joints, keypoints)
    return weak_perspective_reprojection_error(joints, keypoints, keypoints[..., 2],
                                               camera[:, 0], camera[:, 1], camera[:, 2])


def test_keypoint_term_makes_the_body_follow_exact_2d(small_body):
    """The network mesh has its limbs off by ~0.1 rad; the 2D keypoints are the exact
    projection of the true body. The 3D-only fit reprojects no better than the network mesh;
    with the 2D term the error drops to a few pixels, the body gets closer to the true one,
    and scaling the image (keypoints x3) gives the same body: the term is in box units."""
    mesh, network = _perturbed_network_meshes(small_body, count=3, seed=4)
    keypoints = _keypoints(small_body, mesh, "coco")
    fitter = AnnyBodyFitter(small_body)
    only_3d = fitter(network)
    with_2d = fitter(network, keypoints, "coco")
    error_3d = _reprojection_px(small_body, only_3d.fit_vertices_m, keypoints, "coco")
    error_2d = _reprojection_px(small_body, with_2d.fit_vertices_m, keypoints, "coco")
    assert only_3d.camera is None and only_3d.keypoint_error_px is None
    assert error_3d.min() > 7.0  # pixels, on bodies ~400 px tall
    assert (error_2d < 0.4 * error_3d).all() and error_2d.max() < 6.0, (error_2d, error_3d)
    # The jointly fitted camera sees what the closed-form one on the final body sees.
    assert with_2d.camera.shape == (3, 3) and (with_2d.camera[:, 0] > 0).all()
    assert (with_2d.keypoint_error_px - error_2d).abs().max() < 1.5
    # Still a valid body, close to the truth it could not see in 3D.
    assert ((with_2d.phenotype >= 0) & (with_2d.phenotype <= 1)).all()
    truth_3d = (only_3d.fit_vertices_m - mesh).norm(dim=-1).mean()
    truth_2d = (with_2d.fit_vertices_m - mesh).norm(dim=-1).mean()
    assert truth_2d < 0.9 * truth_3d, (truth_2d, truth_3d)
    others = [i for i, b in enumerate(small_body.bone_labels) if b not in FIT_BONES]
    assert with_2d.pose_aa[:, others].abs().max() == 0
    # Three times the image resolution: the same fit (box-normalised pixels).
    bigger = keypoints.clone()
    bigger[..., :2] *= 3.0
    resized = fitter(network, bigger, "coco")
    assert (resized.fit_vertices_m - with_2d.fit_vertices_m).norm(dim=-1).max() < 1e-4
    torch.testing.assert_close(resized.camera[:, 0], 3 * with_2d.camera[:, 0], rtol=1e-4, atol=0)


def test_zero_confidence_joint_does_not_pull(small_body):
    """A joint at confidence 0 may lie anywhere: the fit is bit for bit the same. Given a
    confidence, the same joint pulls the body's wrist towards it."""
    mesh, network = _perturbed_network_meshes(small_body, count=2, seed=5)
    keypoints = _keypoints(small_body, mesh, "human36")
    wrist = 13  # L_Wrist
    fitter = AnnyBodyFitter(small_body, iterations=20)
    fits = []
    for junk in ((900.0, -700.0), (-50.0, 4000.0)):
        moved = keypoints.clone()
        moved[:, wrist, :2] = torch.tensor(junk)
        moved[:, wrist, 2] = 0.0
        fits.append(fitter(network, moved, "human36"))
    assert torch.equal(fits[0].fit_vertices_m, fits[1].fit_vertices_m)
    assert torch.equal(fits[0].camera, fits[1].camera)

    def wrist_px(fit):
        joints = small_body.regress_joints(fit.fit_vertices_m, "human36")
        return fit.camera[:, :1] * joints[:, wrist, :2] + fit.camera[:, 1:]

    pulled = keypoints.clone()
    pulled[:, wrist, 0] += 40.0  # px, a tenth of the body's height
    shift = wrist_px(fitter(network, pulled, "human36")) - wrist_px(fits[0])
    assert (shift[:, 0] > 15.0).all(), shift


def test_keypoint_weight_zero_is_the_3d_fit(small_body):
    mesh, network = _perturbed_network_meshes(small_body, count=2, seed=6)
    fit_3d = AnnyBodyFitter(small_body, iterations=5)(network)
    fit_0 = AnnyBodyFitter(small_body, iterations=5, keypoint_weight=0.0)(
        network, _keypoints(small_body, mesh, "human36"), "human36")
    assert torch.equal(fit_3d.fit_vertices_m, fit_0.fit_vertices_m) and fit_0.camera is None
