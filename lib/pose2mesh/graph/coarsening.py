"""Graclus-style multilevel coarsening by heavy-edge matching, and the balanced binary-tree
ordering that turns the cluster hierarchy into plain 2x pooling / upsampling.

Each coarsening step pairs vertices along graph edges (a matching); every pair, and every
vertex left unmatched (a *singleton*), becomes one node of the next level. Edge weights
start at 1 on the mesh and add up: the weight between two coarse nodes is the sum of the
fine edge weights joining their members, and a node's *volume* is the summed weight of all
fine edges touching its members (internal ones included), as in the normalized-cut
objective of Dhillon et al.'s Graclus.

The binary-tree ordering (Defferrard et al., 2016) gives every coarse node exactly two child
slots; a singleton's second slot holds a *fake* node with no edges. Fake nodes multiply by 2
per level on the way down, so the padded finest size is ``n_coarsest * 2**(levels-1)``: the
fewer singletons the matching leaves, the less padding. The matching therefore

1. visits the vertex with the fewest unmatched neighbours first (Karp-Sipser style: a
   vertex with one free neighbour can only be paired with it), pairing it with the free
   neighbour of highest normalized-cut score ``w_ij * (1/vol_i + 1/vol_j)``;
2. then tries to pair each leftover singleton through an augmenting path (alternate
   unmatched / matched edges ending at another singleton, then flip them), which raises the
   matching's size by one each time without breaking any pair into a singleton.
"""
from __future__ import annotations

import heapq
from collections import deque

import numpy as np
import scipy.sparse as sp


def _greedy_matching(neighbours: list[list[int]], weights: list[list[float]],
                     inv_volume: list[float]) -> list[int]:
    """Heavy-edge matching visiting fewest-free-neighbours vertices first.

    Returns ``mate`` (n,) with the partner index of every vertex, or -1 when unmatched.
    """
    n = len(neighbours)
    mate = [-1] * n
    free_degree = [len(nbrs) for nbrs in neighbours]
    heap = [(free_degree[i], i) for i in range(n)]
    heapq.heapify(heap)
    while heap:
        degree, i = heapq.heappop(heap)
        if mate[i] != -1 or degree != free_degree[i]:
            continue  # already matched, or a stale entry superseded by a smaller degree
        if degree == 0:
            continue  # no free neighbour left: a singleton for now
        best, best_key = -1, None
        for j, w in zip(neighbours[i], weights[i]):
            if mate[j] != -1:
                continue
            key = (w * (inv_volume[i] + inv_volume[j]), -free_degree[j], -j)
            if best_key is None or key > best_key:
                best, best_key = j, key
        mate[i], mate[best] = best, i
        for k in neighbours[i] + neighbours[best]:
            if mate[k] == -1:
                free_degree[k] -= 1
                heapq.heappush(heap, (free_degree[k], k))
    return mate


def _augment_from(root: int, neighbours: list[list[int]], mate: list[int]) -> bool:
    """Breadth-first search for an augmenting path from the unmatched vertex ``root``.

    Blossoms are not contracted (each vertex is labelled once), so some augmenting paths
    in non-bipartite graphs are missed; every path found is simple and valid. Flips the
    path in ``mate`` and returns True when one is found. On meshes a failed search (which
    explores the root's whole component) is rare: it happens about once per odd component.
    """
    reached_from = {root: -1}  # even vertex -> even vertex it was reached from
    visited = {root}
    queue = deque([root])
    while queue:
        x = queue.popleft()
        for y in neighbours[x]:
            if y in visited:
                continue
            if mate[y] == -1:  # free vertex: flip the path root ... x - y
                while True:
                    previous = mate[x]
                    mate[x], mate[y] = y, x
                    if x == root:
                        return True
                    y, x = previous, reached_from[x]
            z = mate[y]
            visited.add(y)
            visited.add(z)
            reached_from[z] = x
            queue.append(z)
    return False


def match_vertices(weights: sp.csr_matrix, volumes: np.ndarray) -> np.ndarray:
    """Pair the nodes of a weighted graph along its edges, leaving few singletons.

    Args:
        weights: (n, n) symmetric non-negative CSR edge weights, zero diagonal.
        volumes: (n,) positive node volumes (summed fine-edge weight of each node).
    Returns:
        (n,) int64 cluster id of every node in [0, n_coarse); each cluster holds one or two
        nodes, and clusters are numbered by their smallest member.
    """
    n = weights.shape[0]
    indptr, indices, data = weights.indptr, weights.indices, weights.data
    bounds = indptr.tolist()
    flat_indices, flat_data = indices.tolist(), data.tolist()
    neighbours = [flat_indices[bounds[i]:bounds[i + 1]] for i in range(n)]
    edge_weights = [flat_data[bounds[i]:bounds[i + 1]] for i in range(n)]
    inv_volume = (1.0 / np.maximum(volumes, np.finfo(np.float64).tiny)).tolist()

    mate = _greedy_matching(neighbours, edge_weights, inv_volume)
    for root in range(n):
        if mate[root] == -1 and neighbours[root]:
            _augment_from(root, neighbours, mate)

    mate_arr = np.asarray(mate, dtype=np.int64)
    nodes = np.arange(n, dtype=np.int64)
    representative = np.where(mate_arr >= 0, np.minimum(nodes, mate_arr), nodes)
    _, cluster = np.unique(representative, return_inverse=True)
    return cluster.astype(np.int64)


def contract(weights: sp.csr_matrix, volumes: np.ndarray, cluster: np.ndarray
             ) -> tuple[sp.csr_matrix, np.ndarray]:
    """Merge the nodes of each cluster.

    Returns the coarse (n_coarse, n_coarse) float64 CSR weights (sums of fine weights
    between clusters, zero diagonal, sorted indices) and the (n_coarse,) coarse volumes.
    """
    n_coarse = int(cluster.max()) + 1
    n = cluster.shape[0]
    assign = sp.csr_matrix(
        (np.ones(n), (cluster, np.arange(n))), shape=(n_coarse, n)
    )
    coarse = (assign @ weights @ assign.T).tocsr()
    coarse.setdiag(0.0)
    coarse.eliminate_zeros()
    coarse.sort_indices()
    return coarse, np.bincount(cluster, weights=volumes, minlength=n_coarse)


def coarsen(adjacency: sp.csr_matrix, levels: int
            ) -> tuple[list[sp.csr_matrix], list[np.ndarray]]:
    """Coarsen a graph ``levels - 1`` times.

    Args:
        adjacency: (V, V) symmetric non-negative CSR adjacency without self-loops.
        levels: number of graphs wanted, finest included (>= 1).
    Returns:
        graphs: ``levels`` float64 CSR weight matrices, finest first (real nodes only).
        clusters: ``levels - 1`` arrays; ``clusters[l][i]`` is the level-(l+1) node that
            level-l node i merges into.
    """
    weights = sp.csr_matrix(adjacency, dtype=np.float64)
    volumes = np.asarray(weights.sum(axis=1)).ravel()
    graphs, clusters = [weights], []
    for _ in range(levels - 1):
        cluster = match_vertices(weights, volumes)
        weights, volumes = contract(weights, volumes, cluster)
        graphs.append(weights)
        clusters.append(cluster)
    return graphs, clusters


def binary_tree_orders(clusters: list[np.ndarray], num_coarsest: int) -> list[np.ndarray]:
    """Padded node orders that make the cluster hierarchy a balanced binary tree.

    Args:
        clusters: as returned by :func:`coarsen` (each cluster has one or two members).
        num_coarsest: number of real nodes at the coarsest level.
    Returns:
        One int64 array per level, finest first; ``orders[l][p]`` is the real level-l node
        at padded position p, or -1 for a fake node. Padded position i at level l+1 is the
        parent of positions 2i and 2i+1 at level l, so ``len(orders[l]) ==
        2 * len(orders[l+1])``; the coarsest level has no fake nodes.
    """
    orders = [np.arange(num_coarsest, dtype=np.int64)]
    for cluster in reversed(clusters):
        n_coarse = int(cluster.max()) + 1
        counts = np.bincount(cluster, minlength=n_coarse)
        if counts.min() < 1 or counts.max() > 2:
            raise ValueError("binary-tree ordering needs clusters of one or two nodes")
        members = np.argsort(cluster, kind="stable")
        starts = np.cumsum(counts) - counts
        first = members[starts]
        second = np.where(counts == 2, members[np.minimum(starts + 1, len(members) - 1)], -1)
        parents = orders[0]
        real = parents >= 0
        children = np.full((len(parents), 2), -1, dtype=np.int64)
        children[real, 0] = first[parents[real]]
        children[real, 1] = second[parents[real]]
        orders.insert(0, children.ravel())
    return orders
