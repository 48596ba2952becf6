"""Loading a trained model from Python.

    from pose2mesh.api import load_model
    model, cfg = load_model(joint_set="coco")              # the shipped pretrained model
    model, cfg = load_model("experiment/run/checkpoint/final.pth.tar")

:func:`load_network` builds and loads the network of a given config (what the demo uses).
For the whole demo pipeline (camera fit, body fit, pictures) use
``pose2mesh.demo.DemoRunner.from_config(*pose2mesh.demo.resolve_model("coco"))``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from pose2mesh.errors import Pose2MeshError

FORCED_OPTS = ("MODEL.posenet_pretrained", "False")
"""Config override of every loaded model: the checkpoint holds the lifter too."""


def load_model(checkpoint: str | Path | None = None, device: str | torch.device = "cpu", *,
               joint_set: str = "human36"):
    """(network in eval mode on ``device``, frozen config) from a checkpoint and the config
    saved in it; ``checkpoint`` None loads the shipped pretrained model for ``joint_set``
    (``asset/pretrained/``). Raises Pose2MeshError for a missing, unsafe or unfitting file."""
    from pose2mesh.config import load_config
    from pose2mesh.engine.checkpoint import saved_config
    from pose2mesh.pretrained import check_pretrained

    path = check_pretrained(joint_set) if checkpoint is None else Path(checkpoint)
    saved = saved_config(path)
    if saved is None:
        raise Pose2MeshError(f"{path}: no config saved in the checkpoint or beside it")
    cfg = load_config(saved, FORCED_OPTS,
                      source=f"the config saved in {path}")
    model, _, _ = load_network(cfg, path, torch.device(device))
    return model, cfg


def load_network(cfg, checkpoint: str | Path, device: torch.device):
    """(network of ``cfg`` on ``device`` in eval mode with the weights of ``checkpoint``, its
    BodyModel, the loaded checkpoint dict), built with the engine's builders. Raises
    Pose2MeshError when the file is missing, unsafe or its weights do not fit ``cfg``."""
    from pose2mesh.engine import builders
    from pose2mesh.engine.checkpoint import load_model_weights

    body_model = builders.build_body_model(cfg, device)
    model = builders.build_network(cfg, builders.build_hierarchy(cfg, body_model)).to(device)
    loaded = load_model_weights(model, checkpoint)
    return model.eval(), body_model, loaded
