"""Small fake SMPL / MANO model files in the official pickle layout, for tests.

The official files are pickled dicts whose ``J_regressor`` is a ``scipy.sparse.csc_matrix``,
whose ``kintree_table`` root parent is 4294967295, and where several arrays are instances of
``chumpy.ch.Ch``. The writers below reproduce that: while pickling they register a throwaway
module named ``chumpy.ch`` (and ``chumpy``) in ``sys.modules`` holding a stand-in ``Ch`` class
whose state is the chumpy state layout (array in ``x``), and remove both modules afterwards,
so the loaders under test must read the files without chumpy.
"""
from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
ROOT_PARENT = 4294967295


def _write_with_fake_chumpy(path: Path, model: dict, chumpy_keys: tuple[str, ...]) -> None:
    """Pickle ``model`` (protocol 2, as the originals) with ``chumpy_keys`` stored as Ch."""
    package = types.ModuleType("chumpy")
    module = types.ModuleType("chumpy.ch")

    class Ch:  # state layout of chumpy.ch.Ch.__getstate__
        def __init__(self, array: np.ndarray) -> None:
            self.x = np.asarray(array, dtype=np.float64)
            self._dirty_vars = set()
            self._itr = None
            self._make_dense = False
            self._make_sparse = False
            self._depends_on_deps = {}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch
    package.ch = module
    content = {key: Ch(value) if key in chumpy_keys else value for key, value in model.items()}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = package, module
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            pickle.dump(content, file, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def _grid_mesh(rows: int, cols: int, size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """A rows x cols vertex grid in the z=0 plane and its (2(rows-1)(cols-1), 3) triangles."""
    y, x = np.meshgrid(np.linspace(0, size_m, rows), np.linspace(0, size_m, cols), indexing="ij")
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(rows * cols)], axis=1)
    index = np.arange(rows * cols).reshape(rows, cols)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)]).astype(np.uint32)
    return vertices, faces


def _model_dict(rows: int, cols: int, parents: tuple[int, ...], seed: int) -> dict:
    """Keys shared by the SMPL and MANO files, with random but well-formed content."""
    rng = np.random.default_rng(seed)
    vertices, faces = _grid_mesh(rows, cols, 0.5)
    num_vertices, num_joints = len(vertices), len(parents)
    regressor = np.zeros((num_joints, num_vertices))
    for joint in range(num_joints):
        regressor[joint, rng.choice(num_vertices, 4, replace=False)] = 0.25
    weights = np.zeros((num_vertices, num_joints))
    weights[np.arange(num_vertices), rng.integers(0, num_joints, num_vertices)] = 0.6
    weights[np.arange(num_vertices), rng.integers(0, num_joints, num_vertices)] += 0.4
    kintree = np.array([[ROOT_PARENT, *parents[1:]], list(range(num_joints))], dtype=np.int64)
    return {
        "v_template": vertices,
        "f": faces,
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "kintree_table": kintree,
        "J": regressor @ vertices,
        "weights": weights,
        "posedirs": 1e-3 * rng.standard_normal((num_vertices, 3, 9 * (num_joints - 1))),
        "shapedirs": 1e-2 * rng.standard_normal((num_vertices, 3, 10)),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_fake_smpl(path: str | Path, seed: int = 0) -> dict:
    """Write a 300-vertex, 24-joint SMPL-layout pickle to ``path``; returns its content
    (with plain arrays)."""
    model = _model_dict(15, 20, SMPL_PARENTS, seed)
    model["J_regressor_prior"] = model["J_regressor"].copy()
    model["weights_prior"] = model["weights"].copy()
    model["vert_sym_idxs"] = np.arange(len(model["v_template"]))
    _write_with_fake_chumpy(
        Path(path), model, ("v_template", "shapedirs", "posedirs", "weights", "J")
    )
    return model


def write_fake_mano(path: str | Path, hands_mean: np.ndarray | None = None, seed: int = 1) -> dict:
    """Write a 780-vertex, 16-joint MANO-layout pickle (right hand) to ``path``.

    Args:
        hands_mean: (45,) mean finger pose; zeros by default so that the zero pose gives
            ``v_template``.
    Returns:
        the written content (with plain arrays).
    """
    model = _model_dict(26, 30, MANO_PARENTS, seed)
    model["hands_components"] = np.eye(45)
    model["hands_coeffs"] = np.zeros((10, 45))
    model["hands_mean"] = np.zeros(45) if hands_mean is None else np.asarray(hands_mean, float)
    _write_with_fake_chumpy(Path(path), model, ("v_template", "shapedirs", "hands_mean"))
    return model
