"""The pretrained models shipped in ``asset/pretrained/`` (embedded anny default).

Installed as package data (:data:`pose2mesh.assets.PRETRAINED_DIR`), so a wheel install has
them too.

One file per input joint set, ``pose2mesh_<joints>J_anny.pth.tar``: a checkpoint whose
``model_state_dict`` is stored in float16 (loaded into float32 models), with the training
config (``config``), the epoch and the source experiment. They are what the demo, the
Python API and ``main/test.py`` run when no ``--weights`` and no matching checkpoint under
``experiment/`` is given. ``tools/train_pretrained.sh`` trains them and
``tools/export_pretrained.py`` writes these files.
"""
from __future__ import annotations

from pathlib import Path

import torch

from pose2mesh.assets import PRETRAINED_DIR
from pose2mesh.errors import Pose2MeshError

PRETRAINED_JOINT_SETS = ("human36", "coco")
REGENERATE = ("regenerate it with `bash tools/train_pretrained.sh {joints}` then "
              "`python tools/export_pretrained.py {joints}`")


def pretrained_path(joint_set: str, folder: str | Path = PRETRAINED_DIR) -> Path:
    """Where the shipped Pose2Mesh model for input ``joint_set`` lives (it may be absent)."""
    return Path(folder) / f"pose2mesh_{joint_set}J_anny.pth.tar"


def check_pretrained(joint_set: str, folder: str | Path = PRETRAINED_DIR) -> Path:
    """The shipped model file for ``joint_set``, checked to load; one line naming the file
    and how to regenerate it when it is missing or corrupt."""
    from pose2mesh.engine.checkpoint import load_checkpoint

    if joint_set not in PRETRAINED_JOINT_SETS:
        raise Pose2MeshError(
            f"no pretrained model ships for joint set '{joint_set}' (shipped: "
            f"{', '.join(PRETRAINED_JOINT_SETS)}); pass --weights FILE"
        )
    path = pretrained_path(joint_set, folder)
    how = REGENERATE.format(joints=joint_set)
    if not path.is_file():
        raise Pose2MeshError(f"pretrained model {path} is missing; {how}")
    try:
        checkpoint = load_checkpoint(path, mmap=True)
    except Pose2MeshError as err:
        raise Pose2MeshError(f"pretrained model {path} is corrupt ({err}); {how}") from None
    if not checkpoint.get("config"):
        raise Pose2MeshError(f"pretrained model {path} has no saved config; {how}")
    return path


def matching_pretrained(cfg, folder: str | Path = PRETRAINED_DIR) -> Path | None:
    """The shipped Pose2Mesh model for ``cfg``'s input joint set if there is one and its
    network has ``cfg``'s shape (:data:`~pose2mesh.engine.checkpoint.NETWORK_SHAPE_KEYS`),
    else None; a shipped file that is corrupt is an error (:func:`check_pretrained`)."""
    from pose2mesh.engine.checkpoint import network_matches, saved_config

    joint_set = cfg.DATASET.input_joint_set
    if (cfg.MODEL.name != "pose2mesh_net" or joint_set not in PRETRAINED_JOINT_SETS
            or not pretrained_path(joint_set, folder).is_file()):
        return None
    path = check_pretrained(joint_set, folder)
    saved = saved_config(path)
    return path if saved is not None and network_matches(saved, joint_set, like=cfg) else None


def export_pretrained(checkpoint: dict, source: str) -> dict:
    """The shipped form of a training ``checkpoint``: float16 weights, config, epoch and
    ``source`` (the experiment it came from); no optimizer or RNG state."""
    weights = {
        name: value.half() if value.is_floating_point() else value
        for name, value in checkpoint["model_state_dict"].items()
    }
    return {"model_state_dict": weights, "config": checkpoint["config"],
            "epoch": int(checkpoint["epoch"]), "source": source,
            "torch_version": str(torch.__version__)}
