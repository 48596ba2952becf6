"""Training losses of Pose2Mesh.

Masking follows the original (DATA_FORMATS 1.8): prediction and target are multiplied by a
0/1 validity mask before the mean, so masked entries still count in the denominator.

* :func:`masked_l1` -- vertex L1 (metres) and joint L1 (millimetres);
* :class:`MeshLoss` -- surface-normal and edge-length losses, with the face and unique-edge
  index buffers built once from the mesh faces;
* :class:`Pose2MeshCriterion` -- all terms and the weighted total used to train Pose2MeshNet.

Differences from the original, on purpose: the normal and edge losses are masked by
``mesh_valid`` too (the original applied them to invalid samples' placeholder meshes), and
the edge loss averages over the mesh's unique edges (the original counted each interior
edge once per adjacent face, i.e. twice, and boundary edges once).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pose2mesh.body_models.joint_regression import SupportRegressor


def masked_l1(pred: torch.Tensor, target: torch.Tensor,
              valid: torch.Tensor | None = None) -> torch.Tensor:
    """``mean(|pred * valid - target * valid|)`` over every element of ``pred``.

    Args:
        pred, target: (B, N, C) in any unit (the loss has the same unit).
        valid: 0/1 mask broadcastable to pred, e.g. (B, N, 1) or (B, 1, 1); None = all valid.
    Returns:
        Scalar; masked entries count as zeros in the mean.
    """
    if valid is None:
        return (pred - target).abs().mean()
    return ((pred - target).abs() * valid).mean()  # = |p v - t v| for v >= 0


def _as_index_array(faces: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(faces, torch.Tensor):
        faces = faces.detach().cpu().numpy()
    return np.ascontiguousarray(faces, dtype=np.int64)


def unique_edges(faces: np.ndarray | torch.Tensor) -> np.ndarray:
    """(E, 2) int64 sorted unique undirected edges (i < j) of a triangle list (F, 3)."""
    faces = _as_index_array(faces)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]  # degenerate faces repeat a vertex
    return np.unique(edges, axis=0)


class MeshLoss(nn.Module):
    """Surface losses between a predicted and a ground-truth mesh of the same topology.

    Args:
        faces: (F, 3) vertex indices of the triangles (numpy or tensor).

    Buffers (non-persistent, follow ``.to(device)``): ``faces`` (F, 3), ``edges`` (E, 2).
    """

    def __init__(self, faces: np.ndarray | torch.Tensor):
        super().__init__()
        faces = _as_index_array(faces)
        self.register_buffer("faces", torch.from_numpy(faces.copy()), persistent=False)
        self.register_buffer("edges", torch.from_numpy(unique_edges(faces)), persistent=False)

    @staticmethod
    def _element_valid(valid: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
        """Per-element (face or edge) validity (B, M, 1): a sample-level mask (B, 1, 1) as is;
        a per-vertex mask (B, V, 1) -> valid only when all the element's vertices are."""
        if valid is None or valid.shape[1] == 1:
            return valid
        per_vertex = valid[..., 0].index_select(1, index.reshape(-1))
        return per_vertex.view(valid.shape[0], *index.shape).amin(dim=2)[..., None]

    def normal_loss(self, pred: torch.Tensor, target: torch.Tensor,
                    valid: torch.Tensor | None = None) -> torch.Tensor:
        """Mean |cos| between the predicted triangle edges and the GT face normals.

        For each face (v0, v1, v2): unit edges v1-v0, v2-v0, v2-v1 of ``pred`` against the GT
        unit normal ``normalize((t1-t0) x (t2-t0))``; zero when the predicted triangles lie in
        the GT tangent planes (the original NormalVectorLoss).

        Args:
            pred, target: (B, V, 3) meshes (any unit).
            valid: (B, V, 1) or (B, 1, 1) 0/1; a face counts when all its vertices are valid.
        Returns:
            Scalar (mean over B * F * 3 terms, masked terms as zeros).
        """
        batch, num_faces = pred.shape[0], self.faces.shape[0]
        index = self.faces.reshape(-1)
        p = pred.index_select(1, index).view(batch, num_faces, 3, 3)
        t = target.index_select(1, index).view(batch, num_faces, 3, 3)
        edges_pred = F.normalize(
            torch.stack((p[:, :, 1] - p[:, :, 0], p[:, :, 2] - p[:, :, 0],
                         p[:, :, 2] - p[:, :, 1]), dim=2), dim=-1)  # (B, F, 3, 3)
        normal = F.normalize(
            torch.linalg.cross(t[:, :, 1] - t[:, :, 0], t[:, :, 2] - t[:, :, 0]), dim=-1)
        cosine = (edges_pred * normal[:, :, None]).sum(-1).abs()  # (B, F, 3)
        face_valid = self._element_valid(valid, self.faces)
        return cosine.mean() if face_valid is None else (cosine * face_valid).mean()

    def edge_loss(self, pred: torch.Tensor, target: torch.Tensor,
                  valid: torch.Tensor | None = None) -> torch.Tensor:
        """Mean | |pred_i - pred_j| - |target_i - target_j| | over the unique mesh edges.

        Args:
            pred, target: (B, V, 3) meshes; the loss has their unit.
            valid: (B, V, 1) or (B, 1, 1) 0/1; an edge counts when both vertices are valid.
        Returns:
            Scalar (mean over B * E terms, masked terms as zeros).
        """
        batch, num_edges = pred.shape[0], self.edges.shape[0]
        index = self.edges.reshape(-1)
        p = pred.index_select(1, index).view(batch, num_edges, 2, 3)
        t = target.index_select(1, index).view(batch, num_edges, 2, 3)
        length_pred = torch.linalg.vector_norm(p[:, :, 0] - p[:, :, 1], dim=-1)
        length_target = torch.linalg.vector_norm(t[:, :, 0] - t[:, :, 1], dim=-1)
        diff = (length_pred - length_target).abs()  # (B, E)
        edge_valid = self._element_valid(valid, self.edges)
        return diff.mean() if edge_valid is None else (diff * edge_valid[..., 0]).mean()


class CoarseMeshLoss(nn.Module):
    """HGN's coarse-mesh constraint: masked L1 (mm) of the predicted coarse mesh nodes against
    the ground-truth mesh's cluster means, both relative to the lifter's root joint.

    ``forward(coarse_mesh_mm, mesh_m, mesh_valid)``: prediction (B, N, 3) mm, ground-truth
    mesh (B, V, 3) metres (any origin), mask (B, 1|N, 1) -> scalar (mm).

    Args:
        poolings: the mesh scales' (n_s, V) cluster-mean matrices, coarse to fine (N = sum n_s).
        root_regressor: (V,) the regressor row of the lifter's root joint; its weights and every
            pooling row sum to one, so the target ``(pooling - 1 root^T) @ mesh`` does not depend
            on the mesh's origin.
    """

    def __init__(self, poolings: list[np.ndarray], root_regressor: torch.Tensor):
        super().__init__()
        pooling = torch.cat([torch.as_tensor(matrix, dtype=torch.float32) for matrix in poolings])
        self.register_buffer("target_matrix", pooling - root_regressor.float()[None], persistent=False)

    def targets_mm(self, mesh_m: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) metres -> (B, N, 3) root-relative coarse nodes in millimetres."""
        return torch.matmul(self.target_matrix, mesh_m) * 1000.0

    def forward(self, coarse_mesh_mm: torch.Tensor, mesh_m: torch.Tensor,
                mesh_valid: torch.Tensor) -> torch.Tensor:
        return masked_l1(coarse_mesh_mm, self.targets_mm(mesh_m), mesh_valid)


class LifterLoss(nn.Module):
    """A lifting-only run's loss: ``forward(outputs, batch, epoch) -> dict``.

    * ``lift``: masked L1 (mm) of ``pose3d_mm`` against ``lift_pose3d_mm``;
    * ``coarse_mesh`` (HGN, when ``coarse`` is given): :class:`CoarseMeshLoss` (mm).

    ``total = lift + coarse_weight * coarse_mesh``.
    """

    def __init__(self, coarse: CoarseMeshLoss | None = None, coarse_weight: float = 1.0):
        super().__init__()
        self.coarse = coarse
        self.coarse_weight = float(coarse_weight)

    def forward(self, outputs: dict, batch: dict, epoch: int) -> dict[str, torch.Tensor]:
        terms = {"lift": masked_l1(outputs["pose3d_mm"].float(), batch["lift_pose3d_mm"],
                                   batch["lift_pose3d_valid"])}
        total = terms["lift"]
        if self.coarse is not None:
            terms["coarse_mesh"] = self.coarse(outputs["coarse_mesh_mm"].float(), batch["mesh_m"],
                                               batch["mesh_valid"])
            total = total + self.coarse_weight * terms["coarse_mesh"]
        terms["total"] = total
        return terms


class Pose2MeshCriterion(nn.Module):
    """The Pose2Mesh training loss: ``forward(outputs, batch, epoch) -> dict``.

    Returned terms (unweighted, for logging) and the weighted ``total``:

    * ``vertex``: masked L1 of ``mesh_m`` (metres), mask ``mesh_valid``;
    * ``normal``: surface-normal loss (weight ``MODEL.normal_loss_weight``);
    * ``edge``: edge-length loss in metres (weight ``MODEL.edge_loss_weight``), added to the
      total only when ``epoch > TRAIN.edge_loss_start`` (always reported);
    * ``joint``: masked L1 (mm) of the joints regressed from the predicted mesh
      (``joint_regressor @ mesh_m * 1000``) against ``reg_pose3d_mm``;
    * ``lift``: masked L1 (mm) of the lifted ``pose3d_mm`` against ``lift_pose3d_mm``;
      both joint terms have the weight ``MODEL.joint_loss_weight``;
    * ``coarse_mesh`` (an HGN lifter, when ``coarse`` is given): :class:`CoarseMeshLoss` (mm),
      weight ``MODEL.joint_loss_weight * MODEL.coarse_mesh_loss_weight`` (the lifter's scale).

    ``total = vertex + w_n normal + [w_e edge] + w_j (joint + lift [+ w_c coarse_mesh])``; without
    the coarse term, as the original.

    Args:
        cfg: config (MODEL.*_loss_weight, TRAIN.edge_loss_start).
        faces: (F, 3) mesh triangles.
        joint_regressor: (Jt, V) dense regressor onto the target joint set.
        coarse: the HGN lifter's coarse-mesh loss, or None.

    ``outputs``: Pose2MeshNet's {"mesh_m" (B, V, 3), "pose3d_mm" (B, J, 3)}; ``batch``: the
    prepared training batch (mesh_m, mesh_valid (B, V|1, 1), reg_pose3d_mm, reg_pose3d_valid,
    lift_pose3d_mm, lift_pose3d_valid).
    """

    def __init__(self, cfg, faces: np.ndarray | torch.Tensor,
                 joint_regressor: np.ndarray | torch.Tensor, coarse: CoarseMeshLoss | None = None):
        super().__init__()
        self.mesh_loss = MeshLoss(faces)
        self.coarse = coarse
        self.coarse_weight = float(cfg.MODEL.coarse_mesh_loss_weight)
        self.joint_regressor = SupportRegressor(torch.as_tensor(joint_regressor))
        self.normal_weight = float(cfg.MODEL.normal_loss_weight)
        self.edge_weight = float(cfg.MODEL.edge_loss_weight)
        self.joint_weight = float(cfg.MODEL.joint_loss_weight)
        self.edge_loss_start = int(cfg.TRAIN.edge_loss_start)

    def regress_joints_mm(self, mesh_m: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) metres -> (B, Jt, 3) millimetres."""
        return self.joint_regressor(mesh_m) * 1000.0

    def forward(self, outputs: dict, batch: dict, epoch: int) -> dict[str, torch.Tensor]:
        mesh = outputs["mesh_m"].float()
        target, mesh_valid = batch["mesh_m"], batch["mesh_valid"]
        terms = {
            "vertex": masked_l1(mesh, target, mesh_valid),
            "normal": self.mesh_loss.normal_loss(mesh, target, mesh_valid),
            "edge": self.mesh_loss.edge_loss(mesh, target, mesh_valid),
            "joint": masked_l1(self.regress_joints_mm(mesh), batch["reg_pose3d_mm"],
                               batch["reg_pose3d_valid"]),
            "lift": masked_l1(outputs["pose3d_mm"].float(), batch["lift_pose3d_mm"],
                              batch["lift_pose3d_valid"]),
        }
        lifter = terms["lift"]
        if self.coarse is not None:
            terms["coarse_mesh"] = self.coarse(outputs["coarse_mesh_mm"].float(), target, mesh_valid)
            lifter = lifter + self.coarse_weight * terms["coarse_mesh"]
        total = (terms["vertex"] + self.normal_weight * terms["normal"]
                 + self.joint_weight * (terms["joint"] + lifter))
        if epoch > self.edge_loss_start:
            total = total + self.edge_weight * terms["edge"]
        terms["total"] = total
        return terms
