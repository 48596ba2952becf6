"""Networks: PoseNet (2D -> 3D lifter), MeshNet (graph CNN), Pose2MeshNet, and the registry.

``build_model(cfg, joint_set, hierarchy)`` picks the network by ``cfg.MODEL.name``:

* ``"posenet"``: :class:`PoseNet`, (B, J, 2) -> (B, J, 3) mm;
* ``"pose2mesh_net"``: :class:`Pose2MeshNet`, (B, J, 2) -> {"mesh_m", "pose3d_mm"}; needs the
  body model's ``MeshHierarchy``. With ``cfg.MODEL.posenet_pretrained`` its lifter is loaded
  from ``cfg.MODEL.posenet_path`` (a PoseNet or Pose2Mesh checkpoint of this framework).
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import JointSet, get_joint_set
from pose2mesh.models.cheb_conv import ChebConv, GraphLaplacian
from pose2mesh.models.meshnet import BODY_PLAN, HAND_PLAN, MeshNet, MeshNetPlan, plan_for_levels
from pose2mesh.models.pose2mesh import Pose2MeshNet
from pose2mesh.models.posenet import PoseNet

__all__ = [
    "BODY_PLAN", "HAND_PLAN", "ChebConv", "GraphLaplacian", "MeshNet", "MeshNetPlan",
    "Pose2MeshNet", "PoseNet", "build_model", "count_parameters", "load_posenet_weights",
    "plan_for_levels",
]

MODEL_NAMES = ("posenet", "pose2mesh_net")


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def _posenet_state(checkpoint, path: Path) -> dict[str, torch.Tensor]:
    """The PoseNet weights in a loaded file: a raw state dict or ``model_state_dict``, of a
    PoseNet or of a Pose2MeshNet (``pose_lifter.*``); ``module.``/``_orig_mod.`` stripped."""
    if isinstance(checkpoint, Mapping) and "model_state_dict" in checkpoint:
        checkpoint = checkpoint["model_state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise Pose2MeshError(f"PoseNet weights file {path} holds no state dict")
    state = {}
    for key, value in checkpoint.items():
        while key.startswith(("module.", "_orig_mod.")):
            key = key.split(".", 1)[1]
        state[key] = value
    if any(key.startswith("pose_lifter.") for key in state):
        state = {key[len("pose_lifter."):]: value for key, value in state.items()
                 if key.startswith("pose_lifter.")}
    return state


def load_posenet_weights(posenet: PoseNet, path: str | os.PathLike) -> None:
    """Load trained lifter weights from ``path`` into ``posenet`` (strict).

    Raises:
        Pose2MeshError: missing/unreadable file, or weights that do not fit (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise Pose2MeshError(f"MODEL.posenet_path: PoseNet weights file not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise Pose2MeshError(f"cannot read PoseNet weights {path}: {reason}") from None
    state = _posenet_state(checkpoint, path)
    own = posenet.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise Pose2MeshError(
            f"PoseNet weights {path} do not fit the model (J={posenet.num_joints}): "
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong-shape "
            f"keys (e.g. '{first}')"
        )
    posenet.load_state_dict(state)


def build_model(cfg, joint_set: JointSet | str, hierarchy=None) -> nn.Module:
    """The network named by ``cfg.MODEL.name`` for ``joint_set`` (the input joint set).

    Args:
        cfg: config (uses MODEL.name, posenet_hidden/stages/dropout, cheb_order,
            posenet_pretrained, posenet_path).
        joint_set: a JointSet or its name.
        hierarchy: the body model's ``pose2mesh.graph.MeshHierarchy`` (pose2mesh_net only).
    """
    from pose2mesh.graph import skeleton_laplacian

    if isinstance(joint_set, str):
        joint_set = get_joint_set(joint_set)
    name = cfg.MODEL.name
    if name not in MODEL_NAMES:
        raise Pose2MeshError(f"unknown MODEL.name '{name}'; expected one of {list(MODEL_NAMES)}")
    posenet = PoseNet(joint_set.num_joints, hidden=cfg.MODEL.posenet_hidden,
                      stages=cfg.MODEL.posenet_stages, dropout=cfg.MODEL.posenet_dropout)
    if name == "posenet":
        return posenet
    if hierarchy is None:
        raise Pose2MeshError("MODEL.name 'pose2mesh_net' needs the body model's mesh hierarchy")
    if cfg.MODEL.posenet_pretrained:
        load_posenet_weights(posenet, cfg.MODEL.posenet_path)
    mesh_net = MeshNet(hierarchy, skeleton_laplacian(joint_set), in_channels=5,
                       order=cfg.MODEL.cheb_order)
    return Pose2MeshNet(posenet, mesh_net)
