"""Checkpoint files: atomic writes, RNG-state capture, lookup of the newest one, loading.

A training checkpoint is a dict with the original Pose2Mesh keys

    epoch, model_state_dict (no ``module.`` prefix), optim_state_dict, scheduler_state_dict,
    train_log (mean total loss per epoch), test_log ({"joint": [...], "surface": [...]} mm)

plus what an exact resume needs: ``rng_states`` (one entry per rank: torch, numpy, python
``random`` and CUDA generators), ``best_metric`` / ``best_epoch``, ``scaler_state_dict``,
``train_history`` / ``test_history`` (per-epoch dicts for the curves), ``world_size`` and
``config`` (the YAML dump of the run's config). Every value loads with
``torch.load(..., weights_only=True)``.

Files: ``checkpoint{epoch}.pth.tar`` per epoch, ``final.pth.tar`` at ``end_epoch`` (instead of
a numbered file, as the original), ``best.pth.tar`` when the test joint error improves.
"""
from __future__ import annotations

import os
import pickle
import random
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from pose2mesh.atomic_io import atomic_write
from pose2mesh.errors import Pose2MeshError

FINAL_NAME = "final.pth.tar"
BEST_NAME = "best.pth.tar"
_NUMBERED = re.compile(r"checkpoint(\d+)\.pth\.tar")


def numbered_name(epoch: int) -> str:
    return f"checkpoint{epoch}.pth.tar"


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy ``src`` to ``dst`` atomically."""
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


# ----------------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict:
    """The torch (CPU and, once initialised, CUDA), numpy and python ``random`` states, in a
    form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached_gaussian)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block (evaluation, baseline estimation) without disturbing the training RNGs."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


# ----------------------------------------------------------------------------- files
def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes."""
    cleaned = {}
    for key, value in state_dict.items():
        while key.startswith(("module.", "_orig_mod.")):
            key = key.split(".", 1)[1]
        cleaned[key] = value
    return cleaned


def save_checkpoint(state: dict, checkpoint_dir: str | os.PathLike, *, is_final: bool, is_best: bool) -> Path:
    """Write ``state`` as ``checkpoint{epoch}.pth.tar`` (or ``final.pth.tar``) and, when
    ``is_best``, copy it to ``best.pth.tar``; both atomically. An existing ``final.pth.tar`` of
    another epoch (a finished run being extended) is kept as that epoch's numbered file.
    Returns the written path."""
    checkpoint_dir = Path(checkpoint_dir)
    path = checkpoint_dir / (FINAL_NAME if is_final else numbered_name(state["epoch"]))
    previous = int(load_checkpoint(path, mmap=True)["epoch"]) if is_final and path.is_file() else None
    if previous is not None and previous != state["epoch"]:
        # A finished run extended: its final file becomes its epoch's numbered file, and only
        # once the new state is safely written (a failed write changes nothing).
        written = checkpoint_dir / numbered_name(state["epoch"])
        atomic_save(state, written)
        os.replace(path, checkpoint_dir / numbered_name(previous))
        os.replace(written, path)
    else:
        atomic_save(state, path)
    if is_best:
        atomic_copy(path, checkpoint_dir / BEST_NAME)
    return path


def _numpy_scalar_globals() -> list:
    """The numpy types a pickled numpy scalar refers to (the original release's checkpoints
    hold some): allowed in the safe loader, which still runs no code."""
    import numpy as np

    multiarray = getattr(np, "_core", None) or np.core
    return [multiarray.multiarray.scalar, np.dtype,
            *(type(np.dtype(code)) for code in "?bhilqBHILQefdgFD")]


def load_checkpoint(path: str | os.PathLike, map_location="cpu", mmap: bool = False) -> dict:
    """Load a checkpoint file (``mmap``: map tensors lazily, to read small fields cheaply).

    Only the safe loader runs (``torch.load(..., weights_only=True)``): tensors, containers,
    plain values and numpy scalars (as in the original release's files). A file that needs
    anything else -- e.g. a pickle that would call a function -- is refused, never unpickled.

    Raises:
        Pose2MeshError: missing, truncated, unreadable or unsafe file (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise Pose2MeshError(f"checkpoint file not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        detail = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line or "global" in line]
        if detail:
            raise Pose2MeshError(
                f"refusing to load {path}: it holds objects that are not tensors or plain values "
                f"({detail[0].rstrip('.')}); only checkpoints that load with "
                "torch.load(weights_only=True) are accepted") from None
        raise Pose2MeshError(f"cannot read checkpoint {path}: not a PyTorch checkpoint") from None
    except Exception as err:  # any other failure to parse a user's file: a bad or cut file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise Pose2MeshError(f"cannot read checkpoint {path}: not a PyTorch checkpoint, or "
                             f"truncated ({type(err).__name__}{': ' + reason if reason else ''})") from None
    if not isinstance(checkpoint, Mapping) or "model_state_dict" not in checkpoint:
        raise Pose2MeshError(f"checkpoint {path} has no 'model_state_dict'")
    return checkpoint


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The checkpoint of the highest epoch in ``checkpoint_dir`` (numbered files and
    ``final.pth.tar``; ``best.pth.tar`` is a copy and never the newest), or None."""
    checkpoint_dir = Path(checkpoint_dir)
    by_epoch: dict[int, Path] = {}
    for path in checkpoint_dir.glob("checkpoint*.pth.tar"):
        match = _NUMBERED.fullmatch(path.name)
        if match:
            by_epoch[int(match[1])] = path
    final = checkpoint_dir / FINAL_NAME
    if final.is_file():
        by_epoch[int(load_checkpoint(final, mmap=True)["epoch"])] = final
    return by_epoch[max(by_epoch)] if by_epoch else None


def load_model_weights(model: torch.nn.Module, path: str | os.PathLike) -> dict:
    """Load ``model_state_dict`` of the checkpoint at ``path`` into ``model`` (strict).

    Returns the checkpoint dict. Raises Pose2MeshError naming the file when the weights do
    not fit the model (missing/unexpected keys or shape mismatches).
    """
    checkpoint = load_checkpoint(path)
    state = strip_module_prefix(checkpoint["model_state_dict"])
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        problems = [
            f"{len(keys)} {what} (e.g. '{keys[0]}')"
            for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                               ("shape mismatches", wrong_shape))
            if keys
        ]
        raise Pose2MeshError(f"checkpoint {path} does not fit the model: {', '.join(problems)}")
    model.load_state_dict(state)
    return checkpoint


# Keys that fix a network's parameter shapes: a checkpoint found for a config must agree.
NETWORK_SHAPE_KEYS = ("body_model", "topology", "graph_levels", "cheb_order", "lifter", "posenet_hidden",
                      "posenet_stages", "hgn_hidden", "hgn_blocks", "hgn_mesh_nodes")


def saved_config(path: str | os.PathLike) -> dict | None:
    """The config dict saved in a checkpoint (or its experiment's ``config.yaml``), or None
    when there is none or the file does not load."""
    import yaml

    path = Path(path)
    try:
        text = load_checkpoint(path, mmap=True).get("config")
    except Pose2MeshError:
        return None
    if not text:
        beside = path.parent.parent / "config.yaml"
        text = beside.read_text() if beside.is_file() else None
    try:
        values = yaml.safe_load(text) if isinstance(text, str) and text else None
    except (yaml.YAMLError, RecursionError):  # RecursionError: a crafted, deeply nested text
        return None
    return values if isinstance(values, dict) else None


def network_matches(saved: dict, joint_set: str, like=None, model_name: str = "pose2mesh_net") -> bool:
    """Whether a saved config dict is a ``model_name`` network for input ``joint_set`` and,
    given a config ``like``, has its :data:`NETWORK_SHAPE_KEYS` (a key the saved config lacks,
    as in checkpoints older than the key, counts as its default)."""
    from pose2mesh.config import get_default_config

    model, dataset = saved.get("MODEL") or {}, saved.get("DATASET") or {}
    if model.get("name") != model_name or dataset.get("input_joint_set") != joint_set:
        return False
    defaults = get_default_config().MODEL
    return like is None or all(_same(model.get(key, defaults[key]), like.MODEL[key]) for key in NETWORK_SHAPE_KEYS)


def _same(saved, current) -> bool:
    """Config values equal, lists and tuples alike."""
    if isinstance(saved, (list, tuple)) and isinstance(current, (list, tuple)):
        return list(saved) == list(current)
    return saved == current
