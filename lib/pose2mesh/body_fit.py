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

All vertices are in the prediction's frame (root-relative, metres).
"""
from __future__ import annotations

import dataclasses

import roma
import torch

from pose2mesh.rotations import local_from_world_deltas, rotation_between

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
    """

    pose_aa: torch.Tensor
    phenotype: torch.Tensor
    transl_m: torch.Tensor
    vertices_m: torch.Tensor
    fit_vertices_m: torch.Tensor
    vertex_error_mm: torch.Tensor


class AnnyBodyFitter(torch.nn.Module):
    """Fits anny parameters to meshes predicted on ``fit_body``'s topology.

    Args:
        fit_body: the anny body model of the predicted meshes' topology.
        output_body: the anny body model to pose with the result (e.g. the 13,718-vertex
            default); None = ``fit_body``.
        iterations: Adam steps of the refinement.
        lr: Adam step size (radians for the pose, metres for the translation).
        joint_weight: weight of the joint term against the vertex term.
    """

    def __init__(self, fit_body, output_body=None, iterations: int = 40, lr: float = 0.05,
                 joint_weight: float = 1.0):
        super().__init__()
        self.fit_body = fit_body
        self.output_body = fit_body if output_body is None else output_body
        self.iterations = int(iterations)
        self.lr = float(lr)
        self.joint_weight = float(joint_weight)
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
            rest = fit_body(pose_aa=fit_body.zero_params(1)["pose_aa"])
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

    def forward(self, mesh_m: torch.Tensor) -> BodyFit:
        """Fit bodies to predicted meshes (B, V_pred, 3) metres; see the module docstring."""
        target = mesh_m.detach().float()
        target_joints = self.fit_body.regress_joints(target, "human36")
        init = self.initial_pose(target_joints)
        pose = init[:, self.fit_bones].clone().requires_grad_(True)
        phenotype_logit = torch.zeros(target.shape[0], 6, device=target.device, requires_grad=True)
        transl = (target.mean(1) - self._posed(init, phenotype_logit, None).mean(1)).detach()
        transl.requires_grad_(True)
        optimizer = torch.optim.Adam([
            {"params": [pose], "lr": self.lr},
            {"params": [phenotype_logit], "lr": 4 * self.lr},  # logits: 0.1 per step
            {"params": [transl], "lr": self.lr / 3},  # metres: 1 cm per step
        ])
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(self.iterations, 1))
        with torch.enable_grad():
            for _ in range(self.iterations):
                optimizer.zero_grad(set_to_none=True)
                vertices = self._posed(self._full_pose(init, pose), phenotype_logit, transl)
                joints = self.fit_body.regress_joints(vertices, "human36")
                loss = (vertices - target).norm(dim=-1).mean() + self.joint_weight * (
                    joints - target_joints).norm(dim=-1).mean()
                loss.backward()
                optimizer.step()
                schedule.step()
        with torch.no_grad():
            full_pose = self._full_pose(init, pose)
            phenotype = torch.sigmoid(phenotype_logit)
            fit_vertices = self.fit_body(pose_aa=full_pose, phenotype=phenotype, transl_m=transl)
            vertices = self.output_body(pose_aa=full_pose, phenotype=phenotype, transl_m=transl)
            error_mm = (fit_vertices - target).norm(dim=-1).mean(-1) * 1000.0
        return BodyFit(pose_aa=full_pose, phenotype=phenotype, transl_m=transl.detach(),
                       vertices_m=vertices, fit_vertices_m=fit_vertices, vertex_error_mm=error_mm)

    def _full_pose(self, init: torch.Tensor, fit_pose: torch.Tensor) -> torch.Tensor:
        pose = torch.zeros_like(init)
        return pose.index_copy(1, self.fit_bones, fit_pose)

    def _posed(self, pose_aa, phenotype_logit, transl):
        params = {"pose_aa": pose_aa, "phenotype": torch.sigmoid(phenotype_logit)}
        if transl is not None:
            params["transl_m"] = transl
        return self.fit_body(**params)


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
