"""Body models behind one interface (:class:`BodyModel`; its forward returns a
:class:`BodyOutput`: vertices and the model's kinematic joints), built by name.

- ``anny``: the embedded anny full body (default; no download, no licence).
- ``anny_hand``: the anny right hand.
- ``smpl`` / ``mano``: through ``smplx``, from the user's licensed model files.
"""
from __future__ import annotations

from pathlib import Path

from pose2mesh.assets import JOINT_REGRESSOR_DIR
from pose2mesh.body_models.anny_model import (
    ANNY_BODY_TOPOLOGIES,
    AnnyModel,
    build_anny_body,
    build_anny_hand,
)
from pose2mesh.body_models.base import BodyModel, BodyOutput
from pose2mesh.body_models.smplx_models import ManoModel, SmplModel
from pose2mesh.errors import Pose2MeshError

BODY_MODEL_NAMES = ("anny", "anny_hand", "smpl", "mano")


def build_body_model(
    name: str,
    *,
    topology: str = "default",
    smpl_dir: str | Path = "smplpytorch",
    mano_dir: str | Path = "manopth",
    data_dir: str | Path = "data",
    gender: str = "neutral",
    asset_dir: str | Path = JOINT_REGRESSOR_DIR,
) -> BodyModel:
    """Build the body model called ``name`` (float32, on the CPU; move it with ``.to()``).

    Args:
        name: one of :data:`BODY_MODEL_NAMES`.
        topology: anny body mesh (:data:`ANNY_BODY_TOPOLOGIES`); the other models have only
            ``"default"``.
        smpl_dir: folder holding ``smplpytorch/native/models/basicModel_*.pkl`` (smpl).
        mano_dir: folder holding ``mano/models/MANO_RIGHT.pkl`` (mano).
        data_dir: dataset root holding the SMPL joint regressors (smpl).
        gender: ``neutral``, ``male`` or ``female`` (smpl).
        asset_dir: folder of the anny joint-regressor files (anny, anny_hand).
    Raises:
        Pose2MeshError: unknown name or topology, missing model file.
    """
    if name not in BODY_MODEL_NAMES:
        raise Pose2MeshError(
            f"unknown body model '{name}'; expected one of {list(BODY_MODEL_NAMES)}"
        )
    if name == "anny":
        return build_anny_body(topology, asset_dir)
    if name == "anny_hand":
        return build_anny_hand(topology, asset_dir)
    if topology != "default":
        raise Pose2MeshError(f"{name}: unknown topology '{topology}'; it has only 'default'")
    if name == "smpl":
        return SmplModel(smpl_dir, data_dir, gender)
    return ManoModel(mano_dir)


__all__ = [
    "ANNY_BODY_TOPOLOGIES",
    "BODY_MODEL_NAMES",
    "AnnyModel",
    "BodyModel",
    "BodyOutput",
    "ManoModel",
    "SmplModel",
    "build_body_model",
]
