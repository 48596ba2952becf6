"""Rescaled normalized graph Laplacians for Chebyshev graph convolutions.

A Chebyshev filter needs the Laplacian's spectrum in [-1, 1]. The normalized Laplacian
``L = I - D^-1/2 A D^-1/2`` has its spectrum in [0, lambda_max] with lambda_max <= 2, so the
rescaled operator ``2 L / lambda_max - I`` with the bound lambda_max = 2 is simply
``L - I = -D^-1/2 A D^-1/2`` -- no eigen-solve. A node of degree 0 (an isolated vertex or a
fake padding node) gets an all-zero row and column.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from pose2mesh.joint_sets import JointSet


def rescaled_laplacian(adjacency: sp.spmatrix) -> sp.csr_matrix:
    """``L_norm - I = -D^-1/2 A D^-1/2`` of a symmetric non-negative adjacency.

    Args:
        adjacency: (n, n) symmetric non-negative weights; the diagonal (self-loops), if
            any, is used as given.
    Returns:
        (n, n) symmetric CSR float32 with spectrum in [-1, 1], sorted indices.
    """
    weights = sp.csr_matrix(adjacency, dtype=np.float64)
    degree = np.asarray(weights.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    positive = degree > 0
    inv_sqrt[positive] = 1.0 / np.sqrt(degree[positive])
    scale = sp.diags(inv_sqrt)
    laplacian = (-(scale @ weights @ scale)).tocsr().astype(np.float32)
    laplacian.eliminate_zeros()
    laplacian.sort_indices()
    return laplacian


def skeleton_laplacian(joint_set: JointSet) -> sp.csr_matrix:
    """(J, J) rescaled Laplacian of the joint set's input graph (bones, flip pairs, extra
    edges).

    ``joint_set.graph_adjacency()`` includes self-loops (the original input graph); they are
    removed before normalizing, so the skeleton uses the same operator as the mesh levels.
    A self-loop only adds a multiple of the node's own feature, which the Chebyshev T_0 = I
    term already carries, and it would shrink the spectrum below the lambda_max = 2 bound
    used for rescaling.
    """
    adjacency = sp.csr_matrix(joint_set.graph_adjacency())
    adjacency.setdiag(0.0)
    adjacency.eliminate_zeros()
    return rescaled_laplacian(adjacency)
