"""Networks: the 2D -> 3D lifters (PoseNet, HGN), MeshNet (graph CNN), Pose2MeshNet, and the
registry.

``build_model(cfg, joint_set, hierarchy)`` builds the network registered (:func:`register_model`)
under ``cfg.MODEL.name``:

* ``"posenet"``: :class:`PoseNet`, (B, J, 2) -> (B, J, 3) mm;
* ``"hgn"``: :class:`HGN`, (B, J, 2) -> {"pose3d_mm", "coarse_mesh_mm"}; needs the body
  model's ``MeshHierarchy`` (its coarse graphs);
* ``"pose2mesh_net"``: :class:`Pose2MeshNet`, (B, J, 2) -> {"mesh_m", "pose3d_mm", ...};
  needs the ``MeshHierarchy``. Its first stage is the lifter named by ``cfg.MODEL.lifter``
  (``"posenet"`` or ``"hgn"``); with ``cfg.MODEL.posenet_pretrained`` the lifter is loaded
  from ``cfg.MODEL.posenet_path`` (a lifter or Pose2Mesh checkpoint of this framework).
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import JointSet, get_joint_set
from pose2mesh.models.cheb_conv import ChebConv, GraphLaplacian
from pose2mesh.models.hgn import HGN
from pose2mesh.models.meshnet import BODY_PLAN, HAND_PLAN, MeshNet, MeshNetPlan, plan_for_levels
from pose2mesh.models.pose2mesh import Pose2MeshNet
from pose2mesh.models.posenet import PoseNet

__all__ = [
    "BODY_PLAN", "HAND_PLAN", "HGN", "ChebConv", "GraphLaplacian", "LIFTER_NAMES", "MeshNet",
    "MeshNetPlan", "Pose2MeshNet", "PoseNet", "build_lifter", "build_model", "count_parameters",
    "load_lifter_weights", "model_names", "plan_for_levels", "register_model",
]

LIFTER_NAMES = ("posenet", "hgn")
"""The registered networks that lift 2D joints to 3D (a lifting-only ``MODEL.name``, or
``MODEL.lifter``, Pose2Mesh's first stage)."""


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def _lifter_state(checkpoint, path: Path) -> dict[str, torch.Tensor]:
    """The lifter weights in a loaded file: a raw state dict or ``model_state_dict``, of a
    lifter or of a Pose2MeshNet (``pose_lifter.*``); ``module.``/``_orig_mod.`` stripped."""
    if isinstance(checkpoint, Mapping) and "model_state_dict" in checkpoint:
        checkpoint = checkpoint["model_state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise Pose2MeshError(f"lifter weights file {path} holds no state dict")
    state = {}
    for key, value in checkpoint.items():
        while key.startswith(("module.", "_orig_mod.")):
            key = key.split(".", 1)[1]
        state[key] = value
    if any(key.startswith("pose_lifter.") for key in state):
        state = {key[len("pose_lifter."):]: value for key, value in state.items()
                 if key.startswith("pose_lifter.")}
    return state


def load_lifter_weights(lifter: nn.Module, path: str | os.PathLike) -> None:
    """Load trained lifter weights from ``path`` into ``lifter`` (a PoseNet or HGN; strict).

    Raises:
        Pose2MeshError: missing/unreadable file, or weights that do not fit (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise Pose2MeshError(f"MODEL.posenet_path: lifter weights file not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise Pose2MeshError(f"cannot read lifter weights {path}: {reason}") from None
    state = _lifter_state(checkpoint, path)
    own = lifter.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise Pose2MeshError(
            f"lifter weights {path} do not fit the {type(lifter).__name__} (J={lifter.num_joints}): "
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong-shape "
            f"keys (e.g. '{first}')"
        )
    lifter.load_state_dict(state)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Function decorator adding a network builder ``(cfg, joint_set, hierarchy) -> Module``
    under ``name`` (a ``MODEL.name``; the lifters among them are :data:`LIFTER_NAMES`)."""

    def decorator(builder):
        _BUILDERS[name] = builder
        return builder

    return decorator


def model_names() -> list[str]:
    return sorted(_BUILDERS)


@register_model("posenet")
def _build_posenet(cfg, joint_set: JointSet, hierarchy=None) -> PoseNet:
    return PoseNet(joint_set.num_joints, hidden=cfg.MODEL.posenet_hidden,
                   stages=cfg.MODEL.posenet_stages, dropout=cfg.MODEL.posenet_dropout)


@register_model("hgn")
def _build_hgn(cfg, joint_set: JointSet, hierarchy=None) -> HGN:
    """HGN on the skeleton and the mesh levels nearest ``cfg.MODEL.hgn_mesh_nodes``."""
    from pose2mesh.graph.multiscale import build_multiscale_graphs

    if hierarchy is None:
        raise Pose2MeshError("the HGN lifter needs the body model's mesh hierarchy")
    graphs = build_multiscale_graphs(joint_set, hierarchy, list(cfg.MODEL.hgn_mesh_nodes))
    return HGN(graphs, hidden=cfg.MODEL.hgn_hidden, blocks=cfg.MODEL.hgn_blocks,
               dropout=cfg.MODEL.hgn_dropout)


@register_model("pose2mesh_net")
def _build_pose2mesh(cfg, joint_set: JointSet, hierarchy=None) -> Pose2MeshNet:
    """The ``cfg.MODEL.lifter`` (weights from ``MODEL.posenet_path`` with
    ``MODEL.posenet_pretrained``) feeding MeshNet on ``hierarchy``."""
    from pose2mesh.graph import skeleton_laplacian

    if hierarchy is None:
        raise Pose2MeshError("MODEL.name 'pose2mesh_net' needs the body model's mesh hierarchy")
    lifter = build_lifter(cfg, cfg.MODEL.lifter, joint_set, hierarchy)
    if cfg.MODEL.posenet_pretrained:
        load_lifter_weights(lifter, cfg.MODEL.posenet_path)
    mesh_net = MeshNet(hierarchy, skeleton_laplacian(joint_set), in_channels=5,
                       order=cfg.MODEL.cheb_order)
    return Pose2MeshNet(lifter, mesh_net)


def build_lifter(cfg, name: str, joint_set: JointSet, hierarchy=None) -> nn.Module:
    """The lifter ``name`` (one of :data:`LIFTER_NAMES`) for ``joint_set``; HGN needs
    ``hierarchy``."""
    if name not in LIFTER_NAMES:
        raise Pose2MeshError(f"unknown lifter '{name}'; expected one of {list(LIFTER_NAMES)}")
    return _BUILDERS[name](cfg, joint_set, hierarchy)


def build_model(cfg, joint_set: JointSet | str, hierarchy=None) -> nn.Module:
    """The network registered under ``cfg.MODEL.name`` for ``joint_set`` (the input joint set).

    Args:
        cfg: config (uses MODEL.name, MODEL.lifter, posenet_hidden/stages/dropout,
            hgn_hidden/blocks/dropout/mesh_nodes, cheb_order, posenet_pretrained,
            posenet_path).
        joint_set: a JointSet or its name.
        hierarchy: the body model's ``pose2mesh.graph.MeshHierarchy`` (hgn, pose2mesh_net).
    """
    if isinstance(joint_set, str):
        joint_set = get_joint_set(joint_set)
    builder = _BUILDERS.get(cfg.MODEL.name)
    if builder is None:
        raise Pose2MeshError(f"unknown MODEL.name '{cfg.MODEL.name}'; expected one of {model_names()}")
    return builder(cfg, joint_set, hierarchy)
