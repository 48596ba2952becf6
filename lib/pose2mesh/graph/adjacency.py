"""Mesh connectivity as a sparse vertex adjacency matrix."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from pose2mesh.errors import Pose2MeshError


def validate_faces(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """Return ``faces`` as a contiguous (F, 3) int64 array after checking shape and range.

    Raises Pose2MeshError (one line) when the array is not (F, 3) integer, or when an index
    falls outside [0, num_vertices).
    """
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise Pose2MeshError(
            f"mesh faces must be a non-empty (F, 3) array, got shape {faces.shape}"
        )
    if not np.issubdtype(faces.dtype, np.integer):
        raise Pose2MeshError(f"mesh faces must be integer vertex indices, got dtype {faces.dtype}")
    if num_vertices <= 0:
        raise Pose2MeshError(f"num_vertices must be positive, got {num_vertices}")
    low, high = int(faces.min()), int(faces.max())
    if low < 0 or high >= num_vertices:
        raise Pose2MeshError(
            f"mesh faces index vertices {low}..{high}, outside 0..{num_vertices - 1}"
        )
    return np.ascontiguousarray(faces, dtype=np.int64)


def adjacency_from_faces(faces: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """Vertex adjacency of a triangle mesh.

    Args:
        faces: (F, 3) integer vertex indices.
        num_vertices: V; vertices referenced by no face become isolated nodes.
    Returns:
        (V, V) symmetric scipy CSR float32 matrix with 1 where two distinct vertices share
        a triangle edge and 0 elsewhere (no self-loops, sorted indices).
    """
    faces = validate_faces(faces, num_vertices)
    rows = faces[:, [0, 1, 2, 1, 2, 0]].ravel()
    cols = faces[:, [1, 2, 0, 0, 1, 2]].ravel()
    keep = rows != cols  # degenerate triangles repeat a vertex
    ones = np.ones(int(keep.sum()), dtype=np.float32)
    adjacency = sp.csr_matrix(
        (ones, (rows[keep], cols[keep])), shape=(num_vertices, num_vertices)
    )
    adjacency.sum_duplicates()
    adjacency.data[:] = 1.0  # an edge shared by two triangles was summed twice
    adjacency.sort_indices()
    return adjacency
