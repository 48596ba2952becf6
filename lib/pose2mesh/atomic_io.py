"""Atomic file writes: a temporary file beside the target, fsynced, then renamed over it.

A failure at any point (an exception, a full disk, ``kill -9``) leaves the target as it was;
an interrupted write can leave only a hidden ``.<name>.*.tmp`` beside it, which
:func:`remove_stale_temporaries` clears. Files get the permissions the user's umask gives
(``mkstemp`` alone would make them 0600).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Run ``write(tmp_path)`` on a temporary file beside ``path``, fsync it and rename it over
    ``path``; the temporary file is removed if anything fails (the error propagates)."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write(tmp_name)
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _umask_mode())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files interrupted atomic writes left in ``folder``; returns them."""
    folder = Path(folder)
    stale = sorted(folder.glob(f".*{TEMP_SUFFIX}")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
