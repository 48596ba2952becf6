"""Mesh and skeleton graphs: adjacency, graclus-style coarsening, rescaled Laplacians and
the cached padded mesh hierarchy used by the coarse-to-fine mesh network."""
from pose2mesh.graph.adjacency import adjacency_from_faces
from pose2mesh.graph.hierarchy import MeshHierarchy, build_mesh_hierarchy
from pose2mesh.graph.laplacian import rescaled_laplacian, skeleton_laplacian

__all__ = [
    "MeshHierarchy",
    "adjacency_from_faces",
    "build_mesh_hierarchy",
    "rescaled_laplacian",
    "skeleton_laplacian",
]
