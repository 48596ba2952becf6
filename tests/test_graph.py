"""Mesh/skeleton graphs: adjacency, coarsening hierarchy, Laplacians and the cache."""
import time

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import maximum_bipartite_matching
import torch
import trimesh

from pose2mesh.errors import Pose2MeshError
from pose2mesh.graph import (
    adjacency_from_faces,
    build_mesh_hierarchy,
    skeleton_laplacian,
)
from pose2mesh.graph.coarsening import binary_tree_orders, coarsen, match_vertices
from pose2mesh.joint_sets import JOINT_SETS
from pose2mesh.models.cheb_conv import GraphLaplacian


@pytest.fixture(scope="module")
def small_sphere():
    """642-vertex icosphere: small enough for dense eigen-solves."""
    mesh = trimesh.creation.icosphere(subdivisions=3)
    return np.asarray(mesh.faces), len(mesh.vertices)


@pytest.fixture(scope="module")
def large_sphere():
    """10,242-vertex icosphere: close to the anny body's 13,718 vertices."""
    mesh = trimesh.creation.icosphere(subdivisions=5)
    return np.asarray(mesh.faces), len(mesh.vertices)


@pytest.fixture(scope="module")
def small_hierarchy(small_sphere):
    return build_mesh_hierarchy(*small_sphere, levels=4)


@pytest.fixture(scope="module")
def large_hierarchy(large_sphere):
    return build_mesh_hierarchy(*large_sphere, levels=9)


def _real_mask(perm: np.ndarray, size: int) -> np.ndarray:
    """Padded positions at a level with n = size nodes that hold at least one real vertex."""
    return (perm.reshape(size, -1) >= 0).any(axis=1)


def _pattern(matrix: sp.spmatrix) -> sp.csr_matrix:
    pattern = sp.csr_matrix(matrix, copy=True)
    pattern.setdiag(0)
    pattern.eliminate_zeros()
    pattern.data[:] = 1
    return pattern


# --------------------------------------------------------------------------- adjacency
def test_adjacency_two_triangles():
    # Square 0-1-2-3 split along diagonal 0-2; vertex 4 is in no face.
    adjacency = adjacency_from_faces(np.array([[0, 1, 2], [0, 2, 3]]), num_vertices=5)
    expected = np.array([
        [0, 1, 1, 1, 0],
        [1, 0, 1, 0, 0],
        [1, 1, 0, 1, 0],
        [1, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
    ], dtype=np.float32)
    assert sp.isspmatrix_csr(adjacency)
    assert adjacency.dtype == np.float32
    np.testing.assert_array_equal(adjacency.toarray(), expected)  # shared edge 0-2 stays 1


def test_adjacency_sphere_symmetric_without_self_loops(small_sphere):
    faces, num_vertices = small_sphere
    adjacency = adjacency_from_faces(faces, num_vertices)
    assert (adjacency != adjacency.T).nnz == 0
    assert adjacency.diagonal().sum() == 0
    assert set(np.unique(adjacency.data)) == {1.0}
    # Closed triangle mesh: every edge is shared by two faces, so E = 3F / 2.
    assert adjacency.nnz == 3 * len(faces)


@pytest.mark.parametrize(
    "faces, num_vertices",
    [(np.array([[0, 1]]), 3), (np.array([[0, 1, 3]]), 3), (np.array([[0.0, 1.0, 2.0]]), 3),
     (np.array([[-1, 0, 1]]), 3)],
)
def test_adjacency_rejects_bad_faces(faces, num_vertices):
    with pytest.raises(Pose2MeshError):
        adjacency_from_faces(faces, num_vertices)


# --------------------------------------------------------------------------- hierarchy
@pytest.mark.parametrize("seed", range(20))
def test_matching_is_maximum_on_bipartite_graphs(seed):
    """Augmenting paths are found exactly on bipartite graphs, so the matching must reach
    the maximum cardinality there (the greedy pass alone misses it for some seeds)."""
    rng = np.random.default_rng(seed)
    biadjacency = sp.csr_matrix((rng.random((40, 40)) < 0.08).astype(np.float64))
    weights = sp.bmat([[None, biadjacency], [biadjacency.T, None]]).tocsr()
    cluster = match_vertices(weights, np.asarray(weights.sum(axis=1)).ravel())
    pairs = np.bincount(cluster) == 2
    best = (maximum_bipartite_matching(biadjacency, perm_type="column") >= 0).sum()
    assert pairs.sum() == best
    members = np.argsort(cluster, kind="stable")
    for group in np.split(members, np.cumsum(np.bincount(cluster))[:-1]):
        assert len(group) == 1 or weights[group[0], group[1]] > 0  # pairs share an edge


def test_laplacians_symmetric_with_spectrum_in_unit_interval(small_hierarchy):
    for laplacian in small_hierarchy.laplacians:
        assert sp.isspmatrix_csr(laplacian) and laplacian.dtype == np.float32
        dense = laplacian.toarray().astype(np.float64)
        np.testing.assert_allclose(dense, dense.T, atol=1e-6)
        eigenvalues = np.linalg.eigvalsh(dense)
        assert eigenvalues.min() >= -1 - 1e-5 and eigenvalues.max() <= 1 + 1e-5
        # Normalized adjacency of a connected graph has eigenvalue 1, so -1 is attained.
        assert eigenvalues.min() == pytest.approx(-1.0, abs=1e-4)


def test_sizes_halve_and_padding_is_small(large_sphere, large_hierarchy):
    _, num_vertices = large_sphere
    sizes = large_hierarchy.sizes
    assert len(sizes) == 9 and large_hierarchy.num_levels == 9
    assert all(sizes[l] == 2 * sizes[l + 1] for l in range(len(sizes) - 1))
    assert [lap.shape for lap in large_hierarchy.laplacians] == [(n, n) for n in sizes]
    # Plain graclus ordering pads this mesh to ~1.7 V; the singleton-avoiding matching
    # must stay close to the lower bound ceil(V / 2**8) * 2**8 = 10,496.
    assert sizes[0] <= 1.05 * num_vertices


def test_permutation_round_trip(large_sphere, large_hierarchy):
    _, num_vertices = large_sphere
    perm, inverse = large_hierarchy.perm, large_hierarchy.inverse_perm
    assert perm.dtype == np.int64 and inverse.dtype == np.int64
    assert perm.shape == (large_hierarchy.sizes[0],) and inverse.shape == (num_vertices,)
    real = perm >= 0
    np.testing.assert_array_equal(np.sort(perm[real]), np.arange(num_vertices))
    values = np.random.default_rng(0).normal(size=(2, num_vertices, 3))
    padded = np.zeros((2, len(perm), 3))
    padded[:, real] = values[:, perm[real]]
    np.testing.assert_array_equal(padded[:, inverse], values)
    np.testing.assert_array_equal(perm[inverse], np.arange(num_vertices))


def test_fine_laplacian_is_the_permuted_mesh_laplacian(small_sphere, small_hierarchy):
    faces, num_vertices = small_sphere
    adjacency = adjacency_from_faces(faces, num_vertices).toarray().astype(np.float64)
    degree = adjacency.sum(axis=1)
    expected = -adjacency / np.sqrt(np.outer(degree, degree))
    fine = small_hierarchy.laplacians[0].toarray()
    inverse = small_hierarchy.inverse_perm
    np.testing.assert_allclose(fine[np.ix_(inverse, inverse)], expected, atol=1e-6)


def test_fake_nodes_have_zero_rows_and_real_nodes_have_edges(large_hierarchy):
    for size, laplacian in zip(large_hierarchy.sizes, large_hierarchy.laplacians):
        real = _real_mask(large_hierarchy.perm, size)
        row_nnz = np.diff(laplacian.indptr)
        assert (row_nnz[~real] == 0).all()
        assert (row_nnz[real] > 0).all()  # the sphere is connected
    assert _real_mask(large_hierarchy.perm, large_hierarchy.sizes[-1]).all()


def test_coarse_adjacency_is_pooled_fine_adjacency(large_hierarchy):
    """Padded nodes i and j at level l+1 are adjacent iff some child of i (2i, 2i+1) is
    adjacent to some child of j at level l."""
    laplacians = large_hierarchy.laplacians
    for fine, coarse in zip(laplacians[:-1], laplacians[1:]):
        n_coarse = coarse.shape[0]
        pool = sp.csr_matrix(
            (np.ones(2 * n_coarse), (np.repeat(np.arange(n_coarse), 2), np.arange(2 * n_coarse))),
            shape=(n_coarse, 2 * n_coarse),
        )
        pooled = _pattern(pool @ _pattern(fine) @ pool.T)
        assert (pooled != _pattern(coarse)).nnz == 0


def test_binary_tree_orders_link_parents_to_children(large_sphere):
    faces, num_vertices = large_sphere
    graphs, clusters = coarsen(adjacency_from_faces(faces, num_vertices), levels=6)
    orders = binary_tree_orders(clusters, graphs[-1].shape[0])
    assert (orders[-1] >= 0).all()
    for level, cluster in enumerate(clusters):
        fine, coarse = orders[level], orders[level + 1]
        assert len(fine) == 2 * len(coarse)
        children = fine.reshape(-1, 2)
        real_children = children >= 0
        parent_real = coarse >= 0
        assert real_children[parent_real].any(axis=1).all()
        assert not real_children[~parent_real].any()
        parents_of_children = np.where(real_children, cluster[children], -1)
        np.testing.assert_array_equal(
            np.where(real_children, parents_of_children, coarse[:, None]),
            np.broadcast_to(coarse[:, None], children.shape),
        )
        # Every real node appears exactly once.
        np.testing.assert_array_equal(np.sort(fine[fine >= 0]), np.arange(len(cluster)))


def test_build_is_deterministic(small_sphere, small_hierarchy):
    again = build_mesh_hierarchy(*small_sphere, levels=4)
    np.testing.assert_array_equal(again.perm, small_hierarchy.perm)
    for a, b in zip(again.laplacians, small_hierarchy.laplacians):
        assert (a != b).nnz == 0


def test_single_level_and_isolated_vertex():
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    hierarchy = build_mesh_hierarchy(faces, num_vertices=5, levels=1)
    assert hierarchy.sizes == [5]
    np.testing.assert_array_equal(hierarchy.perm, np.arange(5))
    assert hierarchy.laplacians[0].getrow(4).nnz == 0
    two_levels = build_mesh_hierarchy(faces, num_vertices=5, levels=2)
    assert two_levels.sizes[0] == 2 * two_levels.sizes[1]
    assert two_levels.laplacians[0].getrow(two_levels.inverse_perm[4]).nnz == 0


@pytest.mark.parametrize("levels", [0, -1, 2.5, True])
def test_bad_levels_raise(levels):
    with pytest.raises(Pose2MeshError):
        build_mesh_hierarchy(np.array([[0, 1, 2]]), 3, levels)


# --------------------------------------------------------------------------- cache
def _assert_same(a, b):
    assert a.num_vertices == b.num_vertices and a.sizes == b.sizes
    np.testing.assert_array_equal(a.perm, b.perm)
    np.testing.assert_array_equal(a.inverse_perm, b.inverse_perm)
    for x, y in zip(a.laplacians, b.laplacians):
        assert x.dtype == y.dtype == np.float32
        np.testing.assert_array_equal(x.indptr, y.indptr)
        np.testing.assert_array_equal(x.indices, y.indices)
        np.testing.assert_array_equal(x.data, y.data)


def test_cache_hit_is_identical_and_faster(tmp_path, large_sphere, large_hierarchy):
    start = time.perf_counter()
    built = build_mesh_hierarchy(*large_sphere, levels=9, cache_dir=tmp_path)
    build_s = time.perf_counter() - start
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temp file left behind
    start = time.perf_counter()
    loaded = build_mesh_hierarchy(*large_sphere, levels=9, cache_dir=tmp_path)
    load_s = time.perf_counter() - start
    _assert_same(built, large_hierarchy)
    _assert_same(loaded, built)
    assert load_s < build_s
    # A different level count is a different cache entry.
    build_mesh_hierarchy(*large_sphere, levels=3, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("garbage", [b"", b"not a zip file", b"PK\x03\x04truncated"])
def test_corrupt_cache_is_rebuilt(tmp_path, small_sphere, small_hierarchy, garbage):
    build_mesh_hierarchy(*small_sphere, levels=4, cache_dir=tmp_path)
    (cache_file,) = tmp_path.iterdir()
    cache_file.write_bytes(garbage)
    rebuilt = build_mesh_hierarchy(*small_sphere, levels=4, cache_dir=tmp_path)
    _assert_same(rebuilt, small_hierarchy)
    _assert_same(build_mesh_hierarchy(*small_sphere, levels=4, cache_dir=tmp_path), rebuilt)


# --------------------------------------------------------------------------- skeleton / torch
@pytest.mark.parametrize("name", sorted(JOINT_SETS))
def test_skeleton_laplacian(name):
    joint_set = JOINT_SETS[name]
    laplacian = skeleton_laplacian(joint_set)
    num_joints = joint_set.num_joints
    assert sp.isspmatrix_csr(laplacian) and laplacian.dtype == np.float32
    assert laplacian.shape == (num_joints, num_joints)
    dense = laplacian.toarray().astype(np.float64)
    np.testing.assert_allclose(dense, dense.T, atol=1e-7)
    assert np.all(np.diag(dense) == 0)  # self-loops are dropped before normalizing
    eigenvalues = np.linalg.eigvalsh(dense)
    assert eigenvalues.min() >= -1 - 1e-6 and eigenvalues.max() <= 1 + 1e-6
    adjacency = joint_set.graph_adjacency() - np.eye(num_joints)
    np.testing.assert_array_equal(dense != 0, adjacency != 0)
    degree = adjacency.sum(axis=1)
    np.testing.assert_allclose(dense, -adjacency / np.sqrt(np.outer(degree, degree)), atol=1e-6)


def test_laplacian_as_torch_sparse(small_hierarchy):
    """A level's Laplacian as the models hold it (GraphLaplacian, the ChebConv operator)."""
    laplacian = small_hierarchy.laplacians[1]
    tensor = GraphLaplacian(laplacian).matrix()
    assert tensor.layout == torch.sparse_csr and tensor.dtype == torch.float32
    assert tuple(tensor.shape) == laplacian.shape
    features = np.random.default_rng(1).normal(size=(laplacian.shape[0], 4)).astype(np.float32)
    product = (tensor @ torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(product, laplacian @ features, rtol=1e-5, atol=1e-6)
