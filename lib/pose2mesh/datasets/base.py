"""The dataset contract shared by the synthetic set and the real benchmarks.

A dataset item is a dict of NumPy arrays that is cheap to produce on the CPU: it may hold
body-model *parameters* instead of meshes. After default collation and the move to the
training device, :meth:`Pose2MeshDataset.prepare_batch` turns a batch into the training
contract in one batched pass (body-model forward, projection, normalisation):

=====================  ============  ===================================================
key                    shape         meaning
=====================  ============  ===================================================
``pose2d``             (B, J, 2)     normalized 2D input (per-sample, per-axis standardized)
``lift_pose3d_mm``     (B, J, 3)     input-set joints, camera frame, root-relative, mm
``lift_pose3d_valid``  (B, J, 1)     0/1
``reg_pose3d_mm``      (B, Jt, 3)    target-set joints, camera frame, root-relative, mm
``reg_pose3d_valid``   (B, Jt, 1)    0/1
``mesh_m``             (B, V, 3)     mesh, camera frame, relative to the target root, metres
``mesh_valid``         (B, 1, 1)     0/1
=====================  ============  ===================================================

Evaluation is per batch (:meth:`evaluate_batch` returns per-sample errors) and summarised
once at the end (:meth:`summarize`), so no dataset ever holds every prediction in memory.
"""
from __future__ import annotations

import numpy as np
import torch

from pose2mesh import metrics
from pose2mesh.joint_sets import JointSet


def root_relative(points: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """Subtract a root point. points (B, N, 3), root (B, 3) -> (B, N, 3)."""
    return points - root[:, None, :]


class Pose2MeshDataset(torch.utils.data.Dataset):
    """Base class: holds the joint sets and implements the default evaluation.

    Subclasses set the attributes below in ``__init__`` and implement ``__len__``,
    ``__getitem__`` and ``prepare_batch``.

    Attributes:
        name: registry name (``"Synthetic"``, ``"Human36M"``, ...).
        split: ``"train"`` or ``"test"``.
        joint_set: the input joint set (also the lifter's output set).
        target_joint_set: joints regressed from the mesh for the joint loss and metrics.
        body_model_name: ``"anny"``, ``"anny_hand"``, ``"smpl"`` or ``"mano"``.
        model_name: ``"posenet"``, ``"hgn"`` or ``"pose2mesh_net"`` (cfg.MODEL.name).
    """

    name: str
    split: str
    joint_set: JointSet
    target_joint_set: JointSet
    body_model_name: str
    model_name: str

    @property
    def has_mesh_targets(self) -> bool:
        """Whether batches hold ``mesh_m``: for Pose2Mesh, and for HGN's coarse-mesh loss."""
        return self.model_name != "posenet"

    @property
    def predicts_mesh(self) -> bool:
        """Whether the model predicts a mesh (Pose2Mesh), so evaluation scores it; a lifter
        is scored on its lifted joints."""
        return self.model_name == "pose2mesh_net"

    def set_epoch(self, epoch: int) -> None:
        """Reseed the random stream of a training set; fixed datasets ignore it."""

    def prepare_batch(self, batch: dict[str, torch.Tensor], body_model) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate_batch(
        self,
        outputs: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        body_model,
    ) -> dict[str, torch.Tensor]:
        """Per-sample errors in mm, each (B,).

        PoseNet: the lifted input-set joints against ``lift_pose3d_mm`` over the input set's
        evaluation joints, both relative to the input root.
        Pose2Mesh: target-set joints regressed from the predicted mesh against
        ``reg_pose3d_mm`` (both relative to the target root, evaluation joints only), and
        the mesh relative to the regressed target root against the ground-truth mesh.
        """
        if not self.predicts_mesh:
            joint_set = self.joint_set
            pred_mm = outputs["pose3d_mm"].float()
            pred_mm = root_relative(pred_mm, pred_mm[:, joint_set.root])
            gt_mm = batch["lift_pose3d_mm"]
            gt_mm = root_relative(gt_mm, gt_mm[:, joint_set.root])
            eval_idx = list(joint_set.eval_joints)
            return {
                "MPJPE": metrics.mpjpe(pred_mm[:, eval_idx], gt_mm[:, eval_idx]),
                "PA-MPJPE": metrics.pa_mpjpe(pred_mm[:, eval_idx], gt_mm[:, eval_idx]),
            }
        joint_set = self.target_joint_set
        root = joint_set.root
        pred_mesh_mm = outputs["mesh_m"].float() * 1000.0
        gt_mesh_mm = batch["mesh_m"] * 1000.0
        pred_joints_mm = body_model.regress_joints(pred_mesh_mm, joint_set.name)
        gt_joints_mm = body_model.regress_joints(gt_mesh_mm, joint_set.name)
        pred_mesh_mm = root_relative(pred_mesh_mm, pred_joints_mm[:, root])
        gt_mesh_mm = root_relative(gt_mesh_mm, gt_joints_mm[:, root])
        pred_joints_mm = root_relative(pred_joints_mm, pred_joints_mm[:, root])
        gt_reg_mm = batch["reg_pose3d_mm"]
        gt_reg_mm = root_relative(gt_reg_mm, gt_reg_mm[:, root])
        eval_idx = list(joint_set.eval_joints)
        return {
            "MPJPE": metrics.mpjpe(pred_joints_mm[:, eval_idx], gt_reg_mm[:, eval_idx]),
            "PA-MPJPE": metrics.pa_mpjpe(pred_joints_mm[:, eval_idx], gt_reg_mm[:, eval_idx]),
            "MPVPE": metrics.mpvpe(pred_mesh_mm, gt_mesh_mm),
            "PA-MPVPE": metrics.pa_mpvpe(pred_mesh_mm, gt_mesh_mm),
        }

    def summarize(self, per_sample: dict[str, np.ndarray]) -> dict[str, float]:
        """Means over the test set of every per-sample error (mm)."""
        return {key: float(np.mean(values)) for key, values in per_sample.items()}
