"""Fitting anny's own parameters to a predicted mesh: a valid full-resolution body.

The network predicts vertices on a small anny topology (the shipped models: 1,229 vertices).
:class:`AnnyBodyFitter` turns them into anny parameters -- ``pose_aa`` of the 21 bones the
mocap library moves (root, spine, neck, head, legs, arms, wrists), the phenotype and a
translation -- and poses the full 13,718-vertex body with them (the role of I2L-MeshNet's
"param" stage). Batched over people, on the models' device:

1. **Initial pose, in closed form** from the human36 joints regressed from the prediction:
   the root rotation by Kabsch alignment of the torso joints (pelvis, hips, torso, neck,
   shoulders) of anny's reference pose onto the predicted ones; then, down each limb, the
   smallest rotation that turns the reference segment (hip -> knee, knee -> ankle,
   shoulder -> elbow, elbow -> wrist) onto the predicted one, on top of its parent's.
2. **Refinement**: ``iterations`` Adam steps (cosine-decayed step size) on the mean vertex distance plus the mean
   human36 joint distance (metres) between the fitted body (on the prediction's topology)
   and the prediction, with the phenotype kept in [0, 1] by a sigmoid.
3. **Optional 2D keypoint term** (``keypoints_px`` given, ``keypoint_weight`` > 0): the
   input 2D pose the network saw, ``[u, v, confidence]`` in pixels, in its joint set. Each
   person also gets a weak-perspective camera ``uv = s * XY + t``, started at the
   closed-form weighted least-squares fit (:func:`initial_cameras`) to the joints of the
   closed-form body (step 1), and optimised jointly with the body parameters. The term is
   the confidence-weighted mean Geman-McClure penalty ``sigma r^2 / (r^2 + sigma^2)`` of
   the reprojection distance ``r`` of each joint, in units of the person's box size (the
   larger side of the box around the confident joints), so its weight does not depend on
   the image's resolution or the person's size in it: near zero it pulls like ``r^2 /
   sigma``, beyond ``sigma`` it fades (a wrong detection does not drag a limb), and a
   zero-confidence joint does not pull. The 3D terms of step 2 stay and keep the body
   plausible (the 2D term alone cannot tell depth). The joints are the fit body's (the
   prediction's topology, regressor of the input joint set) plus, per joint, the offset to
   the *output* body's joints measured once on the closed-form body (about a millimetre;
   it changes by a fraction of that as the fit moves), so the camera sees the joints the
   rendered body has, at no extra cost per step.

All vertices are in the prediction's frame (root-relative, metres).
"""
from __future__ import annotations

import dataclasses

import roma
import torch

from pose2mesh.camera import fit_weak_perspective
from pose2mesh.errors import Pose2MeshError
from pose2mesh.rotations import local_from_world_deltas, rotation_between

DEFAULT_KEYPOINT_WEIGHT = 32.0
"""Weight of the 2D keypoint term against the 3D terms, tuned on the demo's inputs (the
original's Human3.6M pose, real-motion and sample COCO keypoints): reprojection errors beyond
about 1% of the box size then pull harder than the 3D terms, smaller ones give way to them."""
DEFAULT_KEYPOINT_SIGMA = 0.2
"""Geman-McClure scale of the 2D term, in box sizes: joints off by up to about half the box
are pulled in, farther ones (a wrong detection) hardly."""

FIT_BONES = (
    "root", "spine05", "spine03", "spine02", "neck01", "neck02", "head",
    *(f"{bone}.{side}" for side in "LR" for bone in
      ("upperleg01", "lowerleg01", "foot", "clavicle", "upperarm01", "lowerarm01", "wrist")),
)
"""The bones the fit moves (the mocap library's moving bones); all others stay at zero."""

_TORSO_JOINTS = ("Pelvis", "R_Hip", "L_Hip", "Torso", "Neck", "L_Shoulder", "R_Shoulder")
# (anny bone, human36 joint at the segment start, human36 joint at its end), parents first.
_LIMB_SEGMENTS = (
    ("spine05", "Pelvis", "Torso"), ("spine02", "Torso", "Neck"), ("neck01", "Neck", "Head"),
) + tuple(
    (f"{bone}.{s}", f"{side}_{start}", f"{side}_{end}")
    for s, side in (("L", "L"), ("R", "R"))
    for bone, start, end in (("upperleg01", "Hip", "Knee"), ("lowerleg01", "Knee", "Ankle"),
                             ("upperarm01", "Shoulder", "Elbow"), ("lowerarm01", "Elbow", "Wrist"))
)


@dataclasses.dataclass
class BodyFit:
    """Fitted anny bodies of B people.

    Attributes:
        pose_aa: (B, NB, 3) radians, anny body rig order; phenotype: (B, 6) in [0, 1];
        transl_m: (B, 3) metres.
        vertices_m: (B, V, 3) the body on the output topology (full resolution by default).
        fit_vertices_m: (B, V_pred, 3) the body on the prediction's topology.
        vertex_error_mm: (B,) mean distance between ``fit_vertices_m`` and the prediction.
        camera: (B, 3) ``[s px/m, tx px, ty px]`` of the weak-perspective cameras fitted
            jointly with the 2D keypoint term; None without it.
        keypoint_error_px: (B,) confidence-weighted mean reprojection error (pixels) of the
            output body's joints through ``camera``; None without the 2D term.
    """

    pose_aa: torch.Tensor
    phenotype: torch.Tensor
    transl_m: torch.Tensor
    vertices_m: torch.Tensor
    fit_vertices_m: torch.Tensor
    vertex_error_mm: torch.Tensor
    camera: torch.Tensor | None = None
    keypoint_error_px: torch.Tensor | None = None


def initial_cameras(joints_m: torch.Tensor, keypoints_px: torch.Tensor) -> torch.Tensor:
    """(B, 3) ``[s, tx, ty]`` weak-perspective cameras ``uv = s * XY + t`` fitted in closed
    form by confidence-weighted least squares of joints (B, J, 3+) metres onto keypoints
    (B, J, 3) ``[u, v, confidence]`` (:func:`pose2mesh.camera.fit_weak_perspective`; what the
    demo's camera fit does). Where the least-squares scale is not positive, the scale is the
    ratio of the weighted RMS spreads instead (the demo's fallback).

    Raises:
        Pose2MeshError: a person with fewer than two weighted joints at distinct positions.
    """
    xy, uv = joints_m[..., :2], keypoints_px[..., :2]
    weights = keypoints_px[..., 2]
    scale, tx, ty = fit_weak_perspective(xy, uv, weights)
    fallback = ~(torch.isfinite(scale) & (scale > 0))
    if bool(fallback.any()):
        w = torch.where(torch.isfinite(weights) & (weights > 0), weights,
                        torch.zeros_like(weights))[..., None]
        w_sum = w.sum(1, keepdim=True)
        xy_mean = (w * xy).sum(1, keepdim=True) / w_sum
        uv = torch.where(w > 0, uv, torch.zeros_like(uv))
        uv_mean = (w * uv).sum(1, keepdim=True) / w_sum
        spread_xy = (w * (xy - xy_mean) ** 2).sum((1, 2))
        spread_uv = (w * (uv - uv_mean) ** 2).sum((1, 2))
        alt = torch.sqrt(spread_uv / spread_xy.clamp(min=1e-30))
        alt_t = uv_mean[:, 0] - alt[:, None] * xy_mean[:, 0]
        scale = torch.where(fallback, alt, scale)
        tx = torch.where(fallback, alt_t[:, 0], tx)
        ty = torch.where(fallback, alt_t[:, 1], ty)
    return torch.stack([scale, tx, ty], dim=-1)


def geman_mcclure(squared_distance: torch.Tensor, sigma: float) -> torch.Tensor:
    """``sigma d^2 / (d^2 + sigma^2)`` of squared distances ``d^2`` (smooth at 0): ~``d^2 /
    sigma`` for ``d << sigma``, -> ``sigma`` for outliers; its slope in ``d`` is at most
    ``0.65`` (at ``d = sigma / sqrt(3)``)."""
    return sigma * squared_distance / (squared_distance + sigma * sigma)


class _KeypointTerm:
    """The 2D keypoint term of one fit (module docstring, step 3): the input keypoints in
    box units, the cameras being optimised (log scale and translation in box units) and the
    offsets that turn the fit body's joints into the output body's."""

    def __init__(self, fitter: "AnnyBodyFitter", keypoints_px: torch.Tensor, joint_set: str,
                 init_vertices: torch.Tensor, init_params: dict[str, torch.Tensor]):
        self.fitter = fitter
        self.joint_set = joint_set
        num_joints = fitter.fit_body.joint_regressor(joint_set).shape[0]
        keypoints = keypoints_px.detach().to(device=init_vertices.device, dtype=torch.float32)
        expected = (init_vertices.shape[0], num_joints, 3)
        if tuple(keypoints.shape) != expected:
            raise Pose2MeshError(f"body fit: keypoints of joint set '{joint_set}' must have "
                                 f"shape {expected}, got {tuple(keypoints.shape)}")
        confidence = keypoints[..., 2]
        usable = (torch.isfinite(confidence) & (confidence > 0)
                  & torch.isfinite(keypoints[..., :2]).all(-1))
        weights = torch.where(usable, confidence, torch.zeros_like(confidence))
        self.weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-12)  # (B, J)
        uv = torch.where(usable[..., None], keypoints[..., :2], torch.zeros_like(keypoints[..., :2]))
        big = torch.finfo(uv.dtype).max
        low = torch.where(usable[..., None], uv, torch.full_like(uv, big)).amin(1)
        high = torch.where(usable[..., None], uv, torch.full_like(uv, -big)).amax(1)
        self.box_px = (high - low).amax(-1).clamp(min=1.0)  # (B,)
        self.centre_px = torch.where(usable.any(1, keepdim=True), 0.5 * (low + high),
                                     torch.zeros_like(low))  # (B, 2)
        self.uv_box = (uv - self.centre_px[:, None]) / self.box_px[:, None, None]
        with torch.no_grad():
            joints = fitter.fit_body.regress_joints(init_vertices, joint_set)
            self.offsets = torch.zeros_like(joints)
            if fitter.output_body is not fitter.fit_body:
                output = fitter.output_body(**init_params).vertices_m
                self.offsets = fitter.output_body.regress_joints(output, joint_set) - joints
            camera = initial_cameras((joints + self.offsets).double(), torch.cat(
                [uv, self.weights[..., None]], -1).double()).float()
        self.log_scale = torch.log(camera[:, 0] / self.box_px).requires_grad_(True)
        self.trans = ((camera[:, 1:] - self.centre_px) / self.box_px[:, None]).requires_grad_(True)

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [self.log_scale], "lr": lr / 5},  # 1% of the scale per step
                {"params": [self.trans], "lr": lr / 10}]  # half a percent of the box per step

    def squared_distances(self, vertices: torch.Tensor,
                          human36_joints: torch.Tensor | None = None) -> torch.Tensor:
        """(B, J) squared reprojection distances (box units) of the joints of fit-body
        vertices (``human36_joints``: those vertices' human36 joints, if already regressed)."""
        if self.joint_set == "human36" and human36_joints is not None:
            joints = human36_joints
        else:
            joints = self.fitter.fit_body.regress_joints(vertices, self.joint_set)
        projected = self.log_scale.exp()[:, None, None] * (joints + self.offsets)[..., :2]
        return (projected + self.trans[:, None] - self.uv_box).square().sum(-1)

    def loss(self, vertices: torch.Tensor, human36_joints: torch.Tensor, sigma: float
             ) -> torch.Tensor:
        """Mean over people of the weighted mean Geman-McClure penalty."""
        squared = self.squared_distances(vertices, human36_joints)
        return (self.weights * geman_mcclure(squared, sigma)).sum(1).mean()

    @torch.no_grad()
    def results(self, vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cameras (B, 3) ``[s px/m, tx, ty]``, weighted mean reprojection errors (B,) px)."""
        error_px = (self.weights * self.squared_distances(vertices).sqrt()).sum(1) * self.box_px
        scale = self.log_scale.exp() * self.box_px
        trans = self.trans * self.box_px[:, None] + self.centre_px
        return torch.cat([scale[:, None], trans], -1).detach(), error_px


class AnnyBodyFitter(torch.nn.Module):
    """Fits anny parameters to meshes predicted on ``fit_body``'s topology.

    Args:
        fit_body: the anny body model of the predicted meshes' topology.
        output_body: the anny body model to pose with the result (e.g. the 13,718-vertex
            default); None = ``fit_body``.
        iterations: Adam steps of the refinement.
        lr: Adam step size (radians for the pose, metres for the translation).
        joint_weight: weight of the joint term against the vertex term.
        keypoint_weight: weight of the 2D keypoint term (used when :meth:`forward` is given
            keypoints; 0 turns it off) against the 3D terms.
        keypoint_sigma: the Geman-McClure scale of the 2D term, in box sizes.
    """

    def __init__(self, fit_body, output_body=None, iterations: int = 40, lr: float = 0.05,
                 joint_weight: float = 1.0, keypoint_weight: float = DEFAULT_KEYPOINT_WEIGHT,
                 keypoint_sigma: float = DEFAULT_KEYPOINT_SIGMA):
        super().__init__()
        self.fit_body = fit_body
        self.output_body = fit_body if output_body is None else output_body
        self.iterations = int(iterations)
        self.lr = float(lr)
        self.joint_weight = float(joint_weight)
        self.keypoint_weight = float(keypoint_weight)
        self.keypoint_sigma = float(keypoint_sigma)
        labels = list(fit_body.bone_labels)
        self.bone_index = {label: i for i, label in enumerate(labels)}
        self.register_buffer("fit_bones", torch.tensor([self.bone_index[b] for b in FIT_BONES]),
                             persistent=False)
        anny = fit_body.anny
        self.register_buffer("parents", torch.as_tensor(anny.bone_parents, dtype=torch.long),
                             persistent=False)
        self.register_buffer("orientations", anny.reference_bone_orientations.float(),
                             persistent=False)
        from pose2mesh.joint_sets import get_joint_set

        self.joint_names = get_joint_set("human36").joint_names
        with torch.no_grad():
            rest = fit_body(pose_aa=fit_body.zero_params(1)["pose_aa"]).vertices_m
            self.register_buffer("reference_joints_m", fit_body.regress_joints(rest, "human36")[0],
                                 persistent=False)

    def _segment(self, joints: torch.Tensor, start: str, end: str) -> torch.Tensor:
        return (joints[..., self.joint_names.index(end), :]
                - joints[..., self.joint_names.index(start), :])

    @torch.no_grad()
    def initial_pose(self, joints_m: torch.Tensor) -> torch.Tensor:
        """(B, NB, 3) closed-form pose from predicted human36 joints (B, 17, 3) (step 1)."""
        torso = [self.joint_names.index(name) for name in _TORSO_JOINTS]
        reference = self.reference_joints_m[torso]
        predicted = joints_m[:, torso]
        covariance = (predicted - predicted.mean(1, keepdim=True)).transpose(1, 2) @ (
            reference - reference.mean(0))
        root = roma.special_procrustes(covariance)  # turns the reference onto the prediction
        segments = {self.bone_index[bone]: (start, end) for bone, start, end in _LIMB_SEGMENTS}
        deltas = [root]
        for bone in range(1, len(self.bone_index)):  # parents come before their children
            parent = deltas[int(self.parents[bone])]
            if bone in segments:
                rest_dir = self._segment(self.reference_joints_m, *segments[bone])
                target_dir = self._segment(joints_m, *segments[bone])
                parent = rotation_between(parent @ rest_dir, target_dir) @ parent
            deltas.append(parent)
        return local_from_world_deltas(torch.stack(deltas, dim=1), self.parents, self.orientations)

    def forward(self, mesh_m: torch.Tensor, keypoints_px: torch.Tensor | None = None,
                joint_set: str | None = None) -> BodyFit:
        """Fit bodies to predicted meshes (B, V_pred, 3) metres; see the module docstring.

        Args:
            mesh_m: the predictions.
            keypoints_px: optional (B, J, 3) ``[u, v, confidence]`` input 2D poses in the
                joint set ``joint_set`` (step 3; needs ``keypoint_weight`` > 0).
            joint_set: the keypoints' joint set name (required with ``keypoints_px``).
        """
        target = mesh_m.detach().float()
        target_joints = self.fit_body.regress_joints(target, "human36")
        init = self.initial_pose(target_joints)
        pose = init[:, self.fit_bones].clone().requires_grad_(True)
        phenotype_logit = torch.zeros(target.shape[0], 6, device=target.device, requires_grad=True)
        transl = (target.mean(1) - self._posed(init, phenotype_logit, None).mean(1)).detach()
        transl.requires_grad_(True)
        groups = [
            {"params": [pose], "lr": self.lr},
            {"params": [phenotype_logit], "lr": 4 * self.lr},  # logits: 0.1 per step
            {"params": [transl], "lr": self.lr / 3},  # metres: 1 cm per step
        ]
        keypoints = None
        if keypoints_px is not None and self.keypoint_weight > 0:
            if joint_set is None:
                raise ValueError("AnnyBodyFitter: keypoints_px needs its joint_set")
            with torch.no_grad():  # the closed-form body
                init_params = {"pose_aa": init, "phenotype": torch.sigmoid(phenotype_logit),
                               "transl_m": transl}
                init_vertices = self.fit_body(**init_params).vertices_m
            keypoints = _KeypointTerm(self, torch.as_tensor(keypoints_px), joint_set,
                                      init_vertices, init_params)
            groups += keypoints.param_groups(self.lr)
        optimizer = torch.optim.Adam(groups)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(self.iterations, 1))
        with torch.enable_grad():
            for _ in range(self.iterations):
                optimizer.zero_grad(set_to_none=True)
                vertices = self._posed(self._full_pose(init, pose), phenotype_logit, transl)
                joints = self.fit_body.regress_joints(vertices, "human36")
                loss = (vertices - target).norm(dim=-1).mean() + self.joint_weight * (
                    joints - target_joints).norm(dim=-1).mean()
                if keypoints is not None:
                    loss = loss + self.keypoint_weight * keypoints.loss(
                        vertices, joints, self.keypoint_sigma)
                loss.backward()
                optimizer.step()
                schedule.step()
        with torch.no_grad():
            full_pose = self._full_pose(init, pose)
            phenotype = torch.sigmoid(phenotype_logit)
            fit_vertices = self.fit_body(pose_aa=full_pose, phenotype=phenotype,
                                         transl_m=transl).vertices_m
            vertices = self.output_body(pose_aa=full_pose, phenotype=phenotype,
                                        transl_m=transl).vertices_m
            error_mm = (fit_vertices - target).norm(dim=-1).mean(-1) * 1000.0
            camera = keypoint_error = None
            if keypoints is not None:
                camera, keypoint_error = keypoints.results(fit_vertices)
        return BodyFit(pose_aa=full_pose, phenotype=phenotype, transl_m=transl.detach(),
                       vertices_m=vertices, fit_vertices_m=fit_vertices, vertex_error_mm=error_mm,
                       camera=camera, keypoint_error_px=keypoint_error)

    def _full_pose(self, init: torch.Tensor, fit_pose: torch.Tensor) -> torch.Tensor:
        pose = torch.zeros_like(init)
        return pose.index_copy(1, self.fit_bones, fit_pose)

    def _posed(self, pose_aa, phenotype_logit, transl):
        params = {"pose_aa": pose_aa, "phenotype": torch.sigmoid(phenotype_logit)}
        if transl is not None:
            params["transl_m"] = transl
        return self.fit_body(**params).vertices_m


class FittedPose2Mesh(torch.nn.Module):
    """A Pose2Mesh network followed by the body fit: ``mesh_m`` of the output is the fitted
    anny body on the network's topology (what the fitted-body metrics score), the network's
    own mesh is kept as ``network_mesh_m``.

    Args:
        network: a Pose2Mesh network, ``(B, J, 2) -> {"mesh_m": (B, V, 3), ...}``.
        fitter: an :class:`AnnyBodyFitter` for the network's topology.
    """

    def __init__(self, network: torch.nn.Module, fitter: AnnyBodyFitter):
        super().__init__()
        self.network = network
        self.fitter = fitter

    def forward(self, pose2d: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = dict(self.network(pose2d))
        outputs["network_mesh_m"] = outputs["mesh_m"]
        outputs["mesh_m"] = self.fitter(outputs["mesh_m"]).fit_vertices_m
        return outputs
