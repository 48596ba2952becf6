"""SMPL and MANO through the ``smplx`` package, from the user's licensed model files.

The official ``.pkl`` files are read without chumpy (:mod:`legacy_pickle`) and handed to
``smplx.SMPL`` / ``smplx.MANO`` as a ``data_struct``; the forward pass is smplx's ``lbs``.
Both models output METRES. (The original Pose2Mesh MANO layer, manopth, returned
millimetres; consumers that want mm multiply by 1000.)

- smpl: ``pose_aa`` (B, 24, 3) axis-angle (joint 0 = global orientation), ``shape`` (B, 10)
  betas, ``transl_m`` (B, 3). 6,890 vertices.
- mano (right hand, ``use_pca=False``, ``flat_hand_mean=False``): ``pose_aa`` (B, 16, 3),
  joint 0 = global orientation, joints 1..15 are ADDED to the model's mean hand pose (so
  zero pose = the mean, slightly bent hand), ``shape`` (B, 10), ``transl_m`` (B, 3).
  778 vertices.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import smplx
import smplx.lbs
import smplx.utils
import torch

from pose2mesh.body_models.base import BodyModel, BodyOutput
from pose2mesh.body_models.legacy_pickle import load_legacy_pickle
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import add_pelvis_and_neck

SMPL_SITE = "https://smpl.is.tue.mpg.de"
MANO_SITE = "https://mano.is.tue.mpg.de"
SMPL_GENDER_CODES = {"neutral": "neutral", "male": "m", "female": "f"}

MANO_TIP_VERTICES_LAYER = (745, 317, 444, 556, 673)
"""Fingertip vertices (thumb, index, middle, ring, pinky) of the MANO layer's joints."""
MANO_TIP_VERTICES_REGRESSOR = (745, 317, 445, 556, 673)
"""Fingertip vertices of the original ``joint_regressor_mano`` (445, not 444, for the middle
tip: an inconsistency of the original code, kept so that evaluations match it)."""
MANO_JOINT_ORDER = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
"""Rows of [16 native MANO joints, 5 tips] in ``mano`` joint-set order."""


def smpl_model_path(smpl_dir: str | Path, gender: str) -> Path:
    """``<smpl_dir>/smplpytorch/native/models/basicModel_<g>_lbs_10_207_0_v1.0.0.pkl``."""
    if gender not in SMPL_GENDER_CODES:
        raise Pose2MeshError(
            f"smpl: unknown gender '{gender}'; expected one of {list(SMPL_GENDER_CODES)}"
        )
    code = SMPL_GENDER_CODES[gender]
    return (
        Path(smpl_dir) / "smplpytorch" / "native" / "models"
        / f"basicModel_{code}_lbs_10_207_0_v1.0.0.pkl"
    )


def mano_model_path(mano_dir: str | Path) -> Path:
    """``<mano_dir>/mano/models/MANO_RIGHT.pkl``."""
    return Path(mano_dir) / "mano" / "models" / "MANO_RIGHT.pkl"


def _build_layer(
    layer_class: type[smplx.SMPL], path: Path, model: str, site: str, **kwargs
) -> smplx.SMPL:
    """An smplx layer built from the official pickle at ``path``, without chumpy."""
    if not path.is_file():
        raise Pose2MeshError(
            f"{model} model file not found: {path.absolute()}; download it from {site} "
            "(licence required) and place it there"
        )
    data = smplx.utils.Struct(**load_legacy_pickle(path))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a 10-betas notice
            return layer_class(str(path), data_struct=data, **kwargs)
    except AttributeError as err:
        raise Pose2MeshError(f"{path}: not an official {model} model file ({err})") from None


def _load_regressor_file(path: Path, dataset: str, num_vertices: int) -> np.ndarray:
    """(J, V) float32 regressor from a ``data/<dataset>/*.npy`` file."""
    if not path.is_file():
        raise Pose2MeshError(
            f"joint regressor not found: {path.absolute()}; see data/{dataset}/README.md"
        )
    matrix = np.load(path).astype(np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != num_vertices:
        raise Pose2MeshError(
            f"{path}: expected a (J, {num_vertices}) regressor, got shape {matrix.shape}"
        )
    return matrix


_LBS_BUFFERS = ("v_template", "shapedirs", "posedirs", "J_regressor", "parents", "lbs_weights")


class SmplxBackedModel(BodyModel):
    """Shared part of the smplx-backed models.

    The smplx layer only prepares the model tensors; they are kept here as NON-persistent
    buffers (they follow ``.to()`` but never enter a ``state_dict``, so checkpoints never
    carry licensed model data), and :meth:`_forward` runs ``smplx.lbs.lbs`` once for both the
    vertices and the joints (see the subclass) of its :class:`BodyOutput`.
    """

    v_template: torch.Tensor
    shapedirs: torch.Tensor
    posedirs: torch.Tensor
    J_regressor: torch.Tensor
    parents: torch.Tensor
    lbs_weights: torch.Tensor

    def _adopt_layer(self, layer: smplx.SMPL) -> None:
        """Take the tensors of ``layer``, set :attr:`param_shapes`, faces and rest mesh."""
        for key in _LBS_BUFFERS:
            self.register_buffer(key, getattr(layer, key), persistent=False)
        self.param_shapes = {
            "pose_aa": (self.J_regressor.shape[0], 3),
            "shape": (self.shapedirs.shape[-1],),
            "transl_m": (3,),
        }
        self.register_buffer("faces", layer.faces_tensor, persistent=False)
        self.register_buffer("rest_vertices_m", self.v_template.clone(), persistent=False)
        with torch.no_grad():
            rest = self(pose_aa=self.zero_params(1)["pose_aa"]).vertices_m[0]
        self.rest_vertices_m = rest.contiguous()

    def _full_pose(self, pose_aa: torch.Tensor) -> torch.Tensor:
        """(B, K, 3) -> (B, 3K) axis-angle as smplx's ``lbs`` takes it."""
        return pose_aa.flatten(1)

    def _forward(self, params: dict[str, torch.Tensor]) -> BodyOutput:
        vertices, joints = smplx.lbs.lbs(
            params["shape"], self._full_pose(params["pose_aa"]), self.v_template,
            self.shapedirs, self.posedirs, self.J_regressor, self.parents, self.lbs_weights,
            pose2rot=True,
        )
        offset = params["transl_m"][:, None, :]
        return BodyOutput(vertices_m=vertices + offset,
                          joints_m=self._output_joints(vertices, joints) + offset)

    def _output_joints(self, vertices: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """The model's joints from ``lbs``'s untranslated vertices and FK joints."""
        return joints


class SmplModel(SmplxBackedModel):
    """SMPL (``smplx.SMPL``); ``joints_m`` of its :class:`BodyOutput` are the 24 FK joints.

    Joint regressors: ``smpl`` (the model's J_regressor), ``human36``
    (``<data_dir>/Human36M/J_regressor_h36m_correct.npy``) and ``coco``
    (``<data_dir>/COCO/J_regressor_coco.npy`` + Pelvis and Neck rows).
    """

    def __init__(
        self, smpl_dir: str | Path = "smplpytorch", data_dir: str | Path = "data",
        gender: str = "neutral",
    ) -> None:
        super().__init__()
        self.name = "smpl"
        self.gender = gender
        self.data_dir = Path(data_dir)
        path = smpl_model_path(smpl_dir, gender)
        layer = _build_layer(
            smplx.SMPL, path, "SMPL", SMPL_SITE, gender=gender, create_betas=False,
            create_global_orient=False, create_body_pose=False, create_transl=False,
        )
        self._adopt_layer(layer)

    def _load_joint_regressor(self, joint_set_name: str) -> torch.Tensor:
        if joint_set_name == "smpl":
            return self.J_regressor
        if joint_set_name == "human36":
            path = self.data_dir / "Human36M" / "J_regressor_h36m_correct.npy"
            return torch.from_numpy(_load_regressor_file(path, "Human36M", self.num_vertices))
        if joint_set_name == "coco":
            path = self.data_dir / "COCO" / "J_regressor_coco.npy"
            coco17 = _load_regressor_file(path, "COCO", self.num_vertices)
            if coco17.shape[0] != 17:
                raise Pose2MeshError(f"{path}: expected 17 rows, got {coco17.shape[0]}")
            return torch.from_numpy(add_pelvis_and_neck(coco17))
        raise Pose2MeshError(
            f"smpl: no joint regressor for joint set '{joint_set_name}'; "
            "expected one of ['smpl', 'human36', 'coco']"
        )


class ManoModel(SmplxBackedModel):
    """Right-hand MANO (``smplx.MANO``, no PCA, mean hand pose added).

    ``joints_m`` of its :class:`BodyOutput` are the 21 joints of the ``mano`` joint set: 16
    kinematic joints + fingertip vertices 745, 317, 444, 556, 673, reordered by
    :data:`MANO_JOINT_ORDER`. Joint regressor ``mano``: the 16-row J_regressor + one-hot
    rows on 745, 317, 445, 556, 673, same order.
    """

    def __init__(self, mano_dir: str | Path = "manopth") -> None:
        super().__init__()
        self.name = "mano"
        path = mano_model_path(mano_dir)
        layer = _build_layer(
            smplx.MANO, path, "MANO", MANO_SITE, is_rhand=True, use_pca=False,
            flat_hand_mean=False, create_betas=False, create_global_orient=False,
            create_hand_pose=False, create_transl=False,
        )
        if layer.v_template.shape[0] <= max(MANO_TIP_VERTICES_REGRESSOR):
            raise Pose2MeshError(f"{path}: too few vertices for a MANO model")
        self.register_buffer("pose_mean", layer.pose_mean, persistent=False)
        self.register_buffer(
            "tip_vertices", torch.tensor(MANO_TIP_VERTICES_LAYER), persistent=False
        )
        self.register_buffer("joint_order", torch.tensor(MANO_JOINT_ORDER), persistent=False)
        self._adopt_layer(layer)

    def _full_pose(self, pose_aa: torch.Tensor) -> torch.Tensor:
        return pose_aa.flatten(1) + self.pose_mean

    def _output_joints(self, vertices: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        tips = vertices[:, self.tip_vertices]
        return torch.cat([joints, tips], dim=1)[:, self.joint_order]

    def _load_joint_regressor(self, joint_set_name: str) -> torch.Tensor:
        if joint_set_name != "mano":
            raise Pose2MeshError(
                f"mano: no joint regressor for joint set '{joint_set_name}'; expected ['mano']"
            )
        kinematic = self.J_regressor
        tips = torch.zeros(len(MANO_TIP_VERTICES_REGRESSOR), self.num_vertices)
        tips[torch.arange(len(MANO_TIP_VERTICES_REGRESSOR)), list(MANO_TIP_VERTICES_REGRESSOR)] = 1
        return torch.cat([kinematic, tips.to(kinematic)], dim=0)[list(MANO_JOINT_ORDER)]
