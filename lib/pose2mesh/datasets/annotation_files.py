"""Reading the benchmark annotation files: a malformed file is one Pose2MeshError line that
names the file (and the key), never a traceback.

* :func:`require_file` / :func:`load_json` -- a missing file names the dataset README; bad
  JSON syntax, non-UTF-8 text and nesting deeper than the parser goes are one line each;
* :func:`parsing` -- a missing key or a wrongly typed value met while reading an entry;
* :func:`as_array` -- a value checked against the shape the loader expects;
* :func:`rows_to_table` -- per-sample dicts stacked into the columns of a loader's table.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pose2mesh.errors import Pose2MeshError, too_deeply_nested


def require_file(path: Path, readme: str) -> Path:
    """``path`` if it is a file, else a Pose2MeshError naming it and the dataset README."""
    path = Path(path)
    if not path.is_file():
        raise Pose2MeshError(f"missing dataset file {path} (see {readme} for where it comes from)")
    return path


def load_json(path: Path, readme: str):
    """Parse a JSON file; missing file or bad syntax -> one-line Pose2MeshError."""
    path = require_file(path, readme)
    try:
        with path.open("r", encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as err:
        raise Pose2MeshError(
            f"malformed JSON in {path}: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    except UnicodeDecodeError as err:
        raise Pose2MeshError(f"malformed JSON in {path}: not UTF-8 text ({err.reason})") from None
    except RecursionError:
        raise too_deeply_nested(path) from None


@contextlib.contextmanager
def parsing(path: Path, what: str = "entry") -> Iterator[None]:
    """Turn a missing key or a wrongly typed/shaped value met while reading ``path`` into a
    Pose2MeshError that names the file and the key."""
    try:
        yield
    except KeyError as err:
        key = err.args[0] if err.args else "?"
        raise Pose2MeshError(f"malformed {path}: missing key '{key}' in an {what}") from None
    except (TypeError, ValueError, IndexError) as err:
        raise Pose2MeshError(f"malformed {path}: bad value in an {what} ({str(err).splitlines()[0]})") from None


def as_array(value, shape: tuple[int, ...], path: Path, key: str, dtype=np.float32) -> np.ndarray:
    """``np.asarray(value)`` checked against ``shape`` (-1 = any; a trailing axis may be
    longer, e.g. a score column, and is cut); errors name the file and key."""
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise Pose2MeshError(f"malformed {path}: key '{key}' is not numeric") from None
    if (
        array.ndim != len(shape)
        or any(s not in (-1, a) for s, a in zip(shape[:-1], array.shape[:-1]))
        or (shape[-1] != -1 and array.shape[-1] < shape[-1])
    ):
        raise Pose2MeshError(f"malformed {path}: key '{key}' has shape {array.shape}, expected {shape}")
    if shape[-1] != -1:
        array = array[..., : shape[-1]]
    return array


def rows_to_table(rows: list[dict], keys) -> dict[str, np.ndarray]:
    """Stack the ``keys`` of per-sample dicts into table columns (empty columns if no row)."""
    return {key: np.stack([row[key] for row in rows]) if rows else np.zeros((0,)) for key in keys}
