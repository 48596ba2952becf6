"""The mesh-graph hierarchy used by the coarse-to-fine mesh network, with an on-disk cache.

``build_mesh_hierarchy`` coarsens the mesh graph, orders every level as a balanced binary
tree (node i at level l+1 is the parent of nodes 2i and 2i+1 at level l, fake nodes fill
the gaps) and computes the rescaled Laplacian of every level in that padded order.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from pose2mesh.errors import Pose2MeshError
from pose2mesh.graph.adjacency import adjacency_from_faces, validate_faces
from pose2mesh.graph.coarsening import binary_tree_orders, coarsen
from pose2mesh.graph.laplacian import rescaled_laplacian

# Bump when the construction or the file layout changes: old cache files are then ignored.
CACHE_FORMAT_VERSION = 1


@dataclass
class MeshHierarchy:
    """Padded graph hierarchy of a mesh, finest level first.

    Attributes:
        num_vertices: V, vertices of the mesh.
        sizes: padded node counts [n_0, ..., n_{L-1}] with n_l = 2 * n_{l+1}.
        laplacians: L scipy CSR (n_l, n_l) float32 rescaled Laplacians (spectrum in
            [-1, 1]); rows and columns of fake nodes are zero.
        perm: (n_0,) int64, padded position -> mesh vertex index, -1 for a fake node.
        inverse_perm: (V,) int64, mesh vertex -> padded position, so
            ``x_padded[:, inverse_perm]`` returns vertices in body-model order.
    """

    num_vertices: int
    sizes: list[int]
    laplacians: list[sp.csr_matrix]
    perm: np.ndarray
    inverse_perm: np.ndarray

    @property
    def num_levels(self) -> int:
        return len(self.sizes)


def _padded_laplacian(weights: sp.csr_matrix, order: np.ndarray) -> sp.csr_matrix:
    """Rescaled Laplacian of ``weights`` (real nodes) laid out in the padded ``order``."""
    laplacian = rescaled_laplacian(weights).tocoo()
    real_positions = np.flatnonzero(order >= 0)
    position = np.empty(weights.shape[0], dtype=np.int64)
    position[order[real_positions]] = real_positions
    padded = sp.csr_matrix(
        (laplacian.data, (position[laplacian.row], position[laplacian.col])),
        shape=(len(order), len(order)),
        dtype=np.float32,
    )
    padded.sort_indices()
    return padded


def _build(faces: np.ndarray, num_vertices: int, levels: int) -> MeshHierarchy:
    graphs, clusters = coarsen(adjacency_from_faces(faces, num_vertices), levels)
    orders = binary_tree_orders(clusters, graphs[-1].shape[0])
    perm = orders[0]
    real_positions = np.flatnonzero(perm >= 0)
    inverse_perm = np.empty(num_vertices, dtype=np.int64)
    inverse_perm[perm[real_positions]] = real_positions
    return MeshHierarchy(
        num_vertices=num_vertices,
        sizes=[len(order) for order in orders],
        laplacians=[_padded_laplacian(w, order) for w, order in zip(graphs, orders)],
        perm=perm,
        inverse_perm=inverse_perm,
    )


def cache_key(faces: np.ndarray, num_vertices: int, levels: int) -> str:
    """SHA-1 hex digest identifying a hierarchy build (faces, V, levels, format version)."""
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
    digest.update(f"|{faces.shape}|{num_vertices}|{levels}|v{CACHE_FORMAT_VERSION}".encode())
    return digest.hexdigest()


def _save(hierarchy: MeshHierarchy, path: Path) -> None:
    arrays = {
        "num_vertices": np.int64(hierarchy.num_vertices),
        "sizes": np.asarray(hierarchy.sizes, dtype=np.int64),
        "perm": hierarchy.perm,
        "inverse_perm": hierarchy.inverse_perm,
    }
    for level, laplacian in enumerate(hierarchy.laplacians):
        arrays[f"laplacian{level}_indptr"] = laplacian.indptr
        arrays[f"laplacian{level}_indices"] = laplacian.indices
        arrays[f"laplacian{level}_data"] = laplacian.data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _load(path: Path, num_vertices: int, levels: int) -> MeshHierarchy | None:
    """The cached hierarchy, or None when the file is missing, unreadable or inconsistent."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            sizes = [int(s) for s in stored["sizes"]]
            laplacians = [
                sp.csr_matrix(
                    (stored[f"laplacian{l}_data"], stored[f"laplacian{l}_indices"],
                     stored[f"laplacian{l}_indptr"]),
                    shape=(size, size),
                )
                for l, size in enumerate(sizes)
            ]
            hierarchy = MeshHierarchy(
                num_vertices=int(stored["num_vertices"]),
                sizes=sizes,
                laplacians=laplacians,
                perm=stored["perm"].astype(np.int64),
                inverse_perm=stored["inverse_perm"].astype(np.int64),
            )
    except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None
    consistent = (
        hierarchy.num_vertices == num_vertices
        and len(sizes) == levels
        and all(sizes[l] == 2 * sizes[l + 1] for l in range(levels - 1))
        and hierarchy.perm.shape == (sizes[0],)
        and hierarchy.inverse_perm.shape == (num_vertices,)
        and all(lap.dtype == np.float32 for lap in laplacians)
    )
    return hierarchy if consistent else None


def build_mesh_hierarchy(faces: np.ndarray, num_vertices: int, levels: int,
                         cache_dir: str | os.PathLike | None = None) -> MeshHierarchy:
    """Build (or load from ``cache_dir``) the padded coarsening hierarchy of a mesh.

    Args:
        faces: (F, 3) integer triangle vertex indices (numpy or torch CPU tensor).
        num_vertices: V, vertices of the mesh.
        levels: L >= 1 graph levels, the full mesh included.
        cache_dir: folder for ``mesh_hierarchy_<sha1>.npz`` files; None disables caching.
            A corrupt or inconsistent cache file is rebuilt and overwritten.
    Returns:
        The deterministic :class:`MeshHierarchy`.
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise Pose2MeshError(f"mesh hierarchy levels must be an integer >= 1, got {levels!r}")
    faces = validate_faces(np.asarray(faces), int(num_vertices))
    num_vertices, levels = int(num_vertices), int(levels)
    if cache_dir is None:
        return _build(faces, num_vertices, levels)
    path = Path(cache_dir) / f"mesh_hierarchy_{cache_key(faces, num_vertices, levels)}.npz"
    hierarchy = _load(path, num_vertices, levels) if path.exists() else None
    if hierarchy is None:
        hierarchy = _build(faces, num_vertices, levels)
        _save(hierarchy, path)
    return hierarchy
