"""The multi-scale graphs of the HGN lifter: the skeleton plus coarse levels of the mesh.

HGN (Li et al., BMVC 2021) lifts 2D joints on several graphs at once: the joint skeleton and
denser graphs whose nodes are groups of mesh vertices. The coarse graphs here are levels of
the body model's :class:`~pose2mesh.graph.MeshHierarchy` (the one MeshNet uses), so node
``p`` of hierarchy level ``k`` is the cluster of the mesh vertices at padded level-0
positions ``p * 2**k .. (p + 1) * 2**k - 1`` (the binary-tree layout). Fake padding nodes
(clusters without a real vertex) are dropped, so a level of the SMPL hierarchy with 96
padded nodes gives HGN's 83-node graph, and its 48-node level the 45-node graph.

Each coarse node's 3D position, the target of HGN's coarse-mesh loss, is the mean of its
cluster's vertices: ``pooling @ vertices``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from pose2mesh.errors import Pose2MeshError
from pose2mesh.graph.hierarchy import MeshHierarchy
from pose2mesh.joint_sets import JointSet


@dataclass
class MultiScaleGraphs:
    """HGN's graphs, the skeleton first, then the mesh levels from coarse to fine.

    Attributes:
        adjacencies: one (n_s, n_s) float32 0/1 symmetric adjacency per scale, without
            self-loops; scale 0 is the joint skeleton (n_0 = J).
        poolings: one (n_s, V) float32 matrix per mesh scale (scales 1..S-1): row i holds
            1/|cluster i| on the vertices of coarse node i, so ``pooling @ verts`` gives the
            nodes' mean positions (rows sum to one).
        mesh_levels: the hierarchy level behind each mesh scale.
    """

    adjacencies: list[np.ndarray]
    poolings: list[np.ndarray]
    mesh_levels: list[int]

    @property
    def num_nodes(self) -> list[int]:
        return [len(adjacency) for adjacency in self.adjacencies]


def skeleton_adjacency(joint_set: JointSet) -> np.ndarray:
    """(J, J) float32 0/1 adjacency of the bones (and the hand's finger links), no
    self-loops; left/right flip pairs are not edges here (HGN's skeleton graph)."""
    adjacency = np.zeros((joint_set.num_joints, joint_set.num_joints), dtype=np.float32)
    for i, j in joint_set.skeleton + joint_set.extra_graph_edges:
        adjacency[i, j] = adjacency[j, i] = 1.0
    return adjacency


def level_clusters(hierarchy: MeshHierarchy, level: int) -> list[np.ndarray]:
    """The mesh-vertex indices of every real node of hierarchy ``level``, in padded order
    (nodes whose cluster holds only fake vertices are skipped)."""
    width = 2 ** level
    blocks = hierarchy.perm.reshape(hierarchy.sizes[level], width)
    return [block[block >= 0] for block in blocks if (block >= 0).any()]


def level_adjacency(hierarchy: MeshHierarchy, level: int) -> np.ndarray:
    """(n, n) float32 0/1 adjacency of the real nodes of hierarchy ``level`` (the off-diagonal
    pattern of that level's Laplacian), in padded order."""
    width = 2 ** level
    real = (hierarchy.perm.reshape(hierarchy.sizes[level], width) >= 0).any(axis=1)
    pattern = sp.coo_matrix(hierarchy.laplacians[level])
    keep = pattern.row != pattern.col
    adjacency = np.zeros((hierarchy.sizes[level],) * 2, dtype=np.float32)
    adjacency[pattern.row[keep], pattern.col[keep]] = 1.0
    return adjacency[np.ix_(real, real)]


def nearest_level(hierarchy: MeshHierarchy, num_nodes: int) -> int:
    """The hierarchy level whose real-node count is nearest ``num_nodes`` (by ratio)."""
    counts = [len(level_clusters(hierarchy, level)) for level in range(hierarchy.num_levels)]
    return int(np.argmin([abs(np.log(count / num_nodes)) for count in counts]))


def build_multiscale_graphs(joint_set: JointSet, hierarchy: MeshHierarchy,
                            mesh_nodes: list[int] | tuple[int, ...]) -> MultiScaleGraphs:
    """The skeleton of ``joint_set`` plus one mesh scale per entry of ``mesh_nodes`` (the
    wanted node counts, e.g. HGN's (48, 96)): the hierarchy level with the nearest number of
    real nodes, ordered coarse to fine.

    Raises:
        Pose2MeshError: a node count below 1, or two counts that pick the same level.
    """
    if any(int(count) < 1 for count in mesh_nodes):
        raise Pose2MeshError(f"MODEL.hgn_mesh_nodes must be positive node counts, got {list(mesh_nodes)}")
    levels = sorted({nearest_level(hierarchy, int(count)) for count in mesh_nodes}, reverse=True)
    if len(levels) != len(mesh_nodes):
        raise Pose2MeshError(
            f"MODEL.hgn_mesh_nodes {list(mesh_nodes)}: two counts pick the same mesh level "
            f"(real nodes per level: {[len(level_clusters(hierarchy, k)) for k in range(hierarchy.num_levels)]})"
        )
    poolings = []
    for level in levels:
        clusters = level_clusters(hierarchy, level)
        pooling = np.zeros((len(clusters), hierarchy.num_vertices), dtype=np.float32)
        for node, vertices in enumerate(clusters):
            pooling[node, vertices] = 1.0 / len(vertices)
        poolings.append(pooling)
    adjacencies = [skeleton_adjacency(joint_set)] + [level_adjacency(hierarchy, level) for level in levels]
    return MultiScaleGraphs(adjacencies=adjacencies, poolings=poolings, mesh_levels=levels)
