"""Chumpy-free loading of the official SMPL / MANO ``.pkl`` model files.

The licensed model files were pickled (Python 2, latin-1 strings) with some arrays stored as
``chumpy.ch.Ch`` objects. chumpy does not import on NumPy 2, so :func:`load_legacy_pickle`
resolves every class from a module named ``chumpy`` or ``chumpy.*`` to a stub that only keeps
the pickled state, then replaces each stub by the array in its ``x`` field (a plain ``Ch``
stores its value there). scipy sparse matrices (``J_regressor``) are returned as they are;
``smplx`` densifies them itself. The result is a dict that ``smplx`` accepts through its
``data_struct`` argument.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from pose2mesh.errors import Pose2MeshError


class ChumpyStub:
    """Stands in for any chumpy class while unpickling; keeps the pickled state only."""

    chumpy_class = "chumpy"

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyFreeUnpickler(pickle.Unpickler):
    """Unpickler that never imports chumpy: its classes become :class:`ChumpyStub` types."""

    def find_class(self, module: str, name: str) -> type:
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (ChumpyStub,), {"chumpy_class": f"{module}.{name}"})
        return super().find_class(module, name)


def _to_plain(value: Any, path: Path) -> Any:
    """``value`` with every chumpy stub (also inside dicts, lists, tuples) made an array."""
    if isinstance(value, ChumpyStub):
        state = getattr(value, "state", None)
        if not isinstance(state, dict) or "x" not in state:
            raise Pose2MeshError(
                f"{path}: cannot convert the chumpy object {value.chumpy_class} (it holds no "
                "plain array); is this an official SMPL/MANO model file?"
            )
        return np.asarray(_to_plain(state["x"], path))
    if isinstance(value, dict):
        return {key: _to_plain(item, path) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_plain(item, path) for item in value)
    return value


def load_legacy_pickle(path: str | Path) -> dict[str, Any]:
    """Load an official SMPL/MANO ``.pkl`` without chumpy.

    Args:
        path: the model file (e.g. ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`` or
            ``MANO_RIGHT.pkl``).
    Returns:
        the pickled dict with chumpy arrays as ``np.ndarray`` (float64 as stored) and scipy
        sparse matrices unchanged.
    Raises:
        Pose2MeshError: the file is missing, is not a pickle, or holds no dict.
    """
    path = Path(path)
    if not path.is_file():
        raise Pose2MeshError(f"model file not found: {path}")
    try:
        with path.open("rb") as file:
            content = _ChumpyFreeUnpickler(file, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        raise Pose2MeshError(f"{path}: not a readable model pickle ({err})") from None
    if not isinstance(content, dict):
        raise Pose2MeshError(
            f"{path}: expected a pickled dict, got {type(content).__name__}"
        )
    return _to_plain(content, path)
