"""A body model on a decimated copy of another model's mesh.

Used to run the anny body at SMPL's size (``MODEL.topology decimated6890``: 6,890 vertices),
so that speed and memory compare with the original Pose2Mesh on SMPL.

The mesh is simplified by quadric edge collapses (``fast-simplification``), stopped after
exactly ``V - num_vertices`` collapses. Every vertex of the simplified mesh stands for the
cluster of original vertices collapsed into it; it is represented by the cluster member
closest to the simplified position, so the decimated model's vertices are a subset of the
base model's (``keep_index``) and stay exact under every pose and shape. Joint regressors
move each original vertex's weight onto its cluster's representative, so every regressor
row keeps its sum.

On an anny base only the kept vertices are computed (an anny model restricted to those
rows, :meth:`pose2mesh.body_models.anny_model.AnnyModel.vertex_subset_anny`), which took
the synthetic data pipeline at 6,890 vertices from 376 to 612 samples/s on 2 CPU cores
(``python tools/benchmark.py --phases data``).
Other bases compute their full mesh and select the kept vertices.
"""
from __future__ import annotations

import numpy as np
import torch

from pose2mesh.body_models.base import BodyModel, BodyOutput
from pose2mesh.errors import Pose2MeshError


def decimate_mesh(vertices: np.ndarray, faces: np.ndarray, num_vertices: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simplify a triangle mesh to exactly ``num_vertices`` vertices.

    Args:
        vertices: (V, 3) positions (any unit).
        faces: (F, 3) vertex indices.
        num_vertices: target vertex count, 3 <= num_vertices < V.
    Returns:
        ``keep_index`` (num_vertices,) int64: the original vertex representing each new one;
        ``cluster`` (V,) int64: the new vertex each original vertex collapsed into;
        ``new_faces`` (F', 3) int64 triangles over the new vertices.
    Raises:
        Pose2MeshError: a target outside [3, V), or the simplifier cannot reach it.
    """
    import fast_simplification

    total = len(vertices)
    if not 3 <= num_vertices < total:
        raise Pose2MeshError(f"cannot decimate a {total}-vertex mesh to {num_vertices} vertices")
    points = np.ascontiguousarray(vertices, dtype=np.float64)
    triangles = np.ascontiguousarray(faces, dtype=np.int64)
    needed = total - num_vertices
    # Ask for a little more than needed, then replay exactly the first ``needed`` collapses.
    reduction = min(0.999, needed / total + 0.01)
    _, _, collapses = fast_simplification.simplify(points, triangles, target_reduction=reduction,
                                                   return_collapses=True)
    if len(collapses) < needed:
        raise Pose2MeshError(
            f"the simplifier stopped after {len(collapses)} collapses; {needed} are needed for "
            f"{num_vertices} vertices"
        )
    new_points, new_faces, cluster = fast_simplification.replay_simplification(
        points, triangles, np.ascontiguousarray(collapses[:needed])
    )
    cluster = np.asarray(cluster, dtype=np.int64)
    if len(new_points) != num_vertices or cluster.min() < 0 or cluster.max() != num_vertices - 1:
        raise Pose2MeshError(
            f"decimation gave {len(new_points)} vertices instead of {num_vertices}"
        )
    distance = np.linalg.norm(points - new_points[cluster], axis=1)
    order = np.lexsort((distance, cluster))  # by cluster, nearest member first
    first = np.ones(total, dtype=bool)
    first[1:] = cluster[order][1:] != cluster[order][:-1]
    keep_index = order[first]
    return keep_index.astype(np.int64), cluster, np.asarray(new_faces, dtype=np.int64)


class DecimatedBodyModel(BodyModel):
    """``base`` restricted to a ``num_vertices``-vertex decimation of its mesh.

    Same parameters as ``base``; :meth:`forward` returns the base vertices at ``keep_index``
    (B, num_vertices, 3) and the base model's joints (bone heads for anny), metres.

    Args:
        base: the full-resolution body model (its rest mesh is decimated).
        num_vertices: vertex count of the decimated mesh.
    """

    def __init__(self, base: BodyModel, num_vertices: int):
        super().__init__()
        self.base = base
        self.name = base.name
        self.topology = f"decimated{num_vertices}"
        self.param_shapes = dict(base.param_shapes)
        for labels in ("bone_labels", "phenotype_labels"):  # anny: what the synthetic set reads
            if hasattr(base, labels):
                setattr(self, labels, list(getattr(base, labels)))
        keep_index, cluster, faces = decimate_mesh(
            base.rest_vertices_m.detach().cpu().numpy(), base.faces.detach().cpu().numpy(), num_vertices
        )
        device = base.rest_vertices_m.device
        self.register_buffer("keep_index", torch.from_numpy(keep_index).to(device), persistent=False)
        self.register_buffer("cluster", torch.from_numpy(cluster).to(device), persistent=False)
        self.register_buffer("faces", torch.from_numpy(faces).to(device), persistent=False)
        self.register_buffer("rest_vertices_m", base.rest_vertices_m[self.keep_index].clone(),
                             persistent=False)
        subset = getattr(base, "vertex_subset_anny", None)
        self.subset_anny = subset(self.keep_index, self.faces) if subset is not None else None

    def _neutral_value(self, param_name: str) -> float:
        return self.base._neutral_value(param_name)

    def _forward(self, params: dict[str, torch.Tensor]) -> BodyOutput:
        if self.subset_anny is not None:  # same bones as the base: same bone heads
            return self.base.posed_body(self.subset_anny, params)
        output = self.base._forward(params)
        return BodyOutput(vertices_m=output.vertices_m.index_select(1, self.keep_index),
                          joints_m=output.joints_m)

    def _load_joint_regressor(self, joint_set_name: str) -> torch.Tensor:
        full = self.base.joint_regressor(joint_set_name)  # (J, V_base)
        merged = full.new_zeros(full.shape[0], self.num_vertices)
        return merged.index_add_(1, self.cluster.to(full.device), full)
