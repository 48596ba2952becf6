"""The anny joint-regressor asset files (``asset/joint_regressors/*.npz``, installed as
package data: :data:`pose2mesh.assets.JOINT_REGRESSOR_DIR`).

One file per (topology, joint set): ``anny_<topology>_<jointset>.npz`` where ``topology`` is
an anny body topology name (``default`` = full body) or ``hand`` (right hand). Keys:

- ``indptr``, ``indices``, ``data``: a (J, V) CSR matrix (``data`` float32),
- ``shape``: (2,) = (J, V),
- ``joint_names``: (J,) str, in the joint set's order,
- ``mean_err_mm``, ``max_err_mm``: held-out fit error of the regressor, in mm.

``tools/fit_joint_regressors.py`` writes them; :func:`load_regressor_asset` reads them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from pose2mesh.errors import Pose2MeshError

_KEYS = ("indptr", "indices", "data", "shape", "joint_names", "mean_err_mm", "max_err_mm")


@dataclass(frozen=True)
class RegressorAsset:
    """A loaded regressor: ``matrix`` (J, V) dense float32, ``joint_names`` (J,), and the
    held-out fit error in mm."""

    matrix: torch.Tensor
    joint_names: tuple[str, ...]
    mean_err_mm: float
    max_err_mm: float


def regressor_asset_path(asset_dir: str | Path, topology: str, joint_set_name: str) -> Path:
    """``<asset_dir>/anny_<topology>_<joint_set_name>.npz``."""
    return Path(asset_dir) / f"anny_{topology}_{joint_set_name}.npz"


def load_regressor_asset(path: str | Path) -> RegressorAsset:
    """Read one regressor file.

    Raises:
        Pose2MeshError: (one line) the file is missing (naming the path and the tool that
            makes it) or lacks a key / is inconsistent.
    """
    path = Path(path)
    if not path.is_file():
        raise Pose2MeshError(
            f"anny joint regressor not found: {path}; generate it with "
            "`python tools/fit_joint_regressors.py`"
        )
    with np.load(path, allow_pickle=False) as content:
        missing = [key for key in _KEYS if key not in content.files]
        if missing:
            raise Pose2MeshError(f"{path}: missing key(s) {missing} in the regressor file")
        shape = tuple(int(size) for size in content["shape"])
        try:
            matrix = scipy.sparse.csr_matrix(
                (content["data"], content["indices"], content["indptr"]), shape=shape
            )
        except ValueError as err:
            raise Pose2MeshError(f"{path}: inconsistent CSR arrays ({err})") from None
        joint_names = tuple(str(name) for name in content["joint_names"])
        if len(joint_names) != shape[0]:
            raise Pose2MeshError(
                f"{path}: {len(joint_names)} joint names for a regressor of {shape[0]} rows"
            )
        return RegressorAsset(
            matrix=torch.from_numpy(matrix.toarray().astype(np.float32)),
            joint_names=joint_names,
            mean_err_mm=float(content["mean_err_mm"]),
            max_err_mm=float(content["max_err_mm"]),
        )


def save_regressor_asset(
    path: str | Path,
    matrix: np.ndarray | scipy.sparse.spmatrix,
    joint_names: Sequence[str],
    mean_err_mm: float,
    max_err_mm: float,
) -> None:
    """Write a (J, V) regressor in the asset format (zeros are dropped, data stored float32)."""
    csr = scipy.sparse.csr_matrix(matrix, dtype=np.float32)
    csr.eliminate_zeros()
    if len(joint_names) != csr.shape[0]:
        raise ValueError(f"{len(joint_names)} joint names for {csr.shape[0]} regressor rows")
    np.savez_compressed(
        path,
        indptr=csr.indptr.astype(np.int64),
        indices=csr.indices.astype(np.int64),
        data=csr.data,
        shape=np.asarray(csr.shape, dtype=np.int64),
        joint_names=np.asarray(joint_names, dtype=str),
        mean_err_mm=np.float32(mean_err_mm),
        max_err_mm=np.float32(max_err_mm),
    )
