"""The demo pipeline: 2D poses -> Pose2Mesh network -> camera fit -> pictures and OBJ files.

``demo/run.py`` is a thin command line over this module.

1. **Model** (:func:`resolve_model`): a config and a checkpoint. ``--weights`` names a file (or
   an experiment folder); otherwise ``TEST.weight_path`` of ``--cfg`` when that file exists;
   otherwise the newest ``final.pth.tar`` (else ``best.pth.tar``, else the newest
   ``checkpoint<N>.pth.tar``) under ``experiment/*/checkpoint/`` whose saved config is a
   Pose2Mesh model for the input joint set (and, with ``--cfg``, has the same network shape);
   otherwise the shipped pretrained model of ``asset/pretrained/`` for the joint set
   (:mod:`pose2mesh.pretrained`; with ``--cfg`` only if its network shape matches).
   Without ``--cfg`` the checkpoint's own saved config is used. ``MODEL.posenet_pretrained``
   is forced off: the checkpoint holds the lifter too.
2. **Network input**: every person's missing joints (confidence <= 0) are given positions by
   :func:`pose2mesh.pose_input.fill_missing_joints`, then the pixel coordinates are
   standardised per axis (:func:`pose2mesh.camera.standardize_pose2d`; this equals the
   training crop normalisation of DATA_FORMATS 1.5 without rotation).
3. **Prediction**: one batched forward pass for all people gives root-relative meshes in
   metres, camera axes (x right, y down, z forward), body-model vertex order. For anny
   models the full-resolution anny body is then fitted to each mesh
   (:class:`pose2mesh.body_fit.AnnyBodyFitter`, batched) and replaces it (``--raw_mesh``
   keeps the network's mesh). By default that fit also follows the input 2D pose: a
   confidence-weighted, robust reprojection term of the body's input-set joints, with a
   weak-perspective camera per person optimised jointly with the body (started at the
   closed-form fit of step 4 on the closed-form body), next to the 3D terms that keep the
   body close to the network's mesh (``fit_2d=False``, ``--no_fit_2d``: the 3D terms only,
   what ``tools/evaluate_pretrained.py`` scores). The input joint set's joints are
   regressed from each output mesh with the body model's regressor.
4. **Camera**: per person a weak-perspective camera ``uv = s * XY + t`` is fitted in closed
   form (:func:`pose2mesh.camera.fit_weak_perspective`) by weighted least squares of the
   regressed joints' x, y (metres) onto the input pixels, with the confidences as weights:
   zero-confidence joints are masked out (the filled-in positions never enter the fit). Its
   weighted mean reprojection error (pixels) is logged. If the fit gives a non-positive
   scale (a prediction that does not match the input, e.g. untrained weights), the scale is
   the ratio of the weighted RMS spreads instead, and the log says so.
   For rendering the weak-perspective camera becomes a pinhole camera with principal point
   at the image centre and focal length ``f`` -- by default the one that gives a
   :data:`DEFAULT_FOV_DEG` (40 degree) field of view across the longer image side,
   ``f = max(H, W) / (2 tan 20 deg) ~= 1.37 max(H, W)`` -- and each mesh is translated by
   ``T = ((tx - cx) / s, (ty - cy) / s, f / s)`` metres
   (:func:`pose2mesh.camera.weak_to_perspective_translation`), so that it projects like the
   fitted camera to first order in (body depth / distance). The log also gives the
   reprojection error of the joints as rendered (pinhole), which includes that
   perspective effect.
5. **Outputs** in the output folder: ``demo_pose2d.png`` (the input skeletons over the image
   or a white canvas; missing joints as red crosses at their filled-in positions; people
   numbered when there are several), ``demo_mesh.png`` (every mesh over the image, lit, one
   colour per person), ``demo_mesh_side.png`` (the meshes turned 90 degrees about the
   vertical axis, white canvas) and ``demo_mesh_<i>.obj`` per person ``i`` of the input
   file, in the camera frame above (metres, x right, y down, z forward, translated by T),
   so the OBJ files of several people form one scene; with the body fit also
   ``demo_mesh_<i>_anny.json``: the body's anny parameters (pose, phenotype, translation in
   that frame) and the camera (:func:`write_body_parameters`).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pose2mesh.api import FORCED_OPTS, load_network
from pose2mesh.assets import config_path
from pose2mesh.body_fit import DEFAULT_KEYPOINT_WEIGHT, AnnyBodyFitter, BodyFit
from pose2mesh.camera import (
    fit_weak_perspective,
    standardize_pose2d,
    weak_perspective_reprojection_error,
    weak_to_perspective_translation,
)
from pose2mesh.config import load_config
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import JointSet, get_joint_set
from pose2mesh.pose_input import fill_missing_joints
from pose2mesh.engine.checkpoint import network_matches, saved_config
from pose2mesh.pretrained import (
    PRETRAINED_DIR,
    PRETRAINED_JOINT_SETS,
    check_pretrained,
    matching_pretrained,
)
from pose2mesh.vis import canvas_shape_for_pose, draw_people, render_meshes, render_side_view
from pose2mesh.vis import save_obj, write_image

logger = logging.getLogger(__name__)

DEFAULT_FOV_DEG = 40.0
MIN_DEPTH_RATIO = 5.0  # rendered meshes lie >= this many times their depth extent away
MIN_CONFIDENT_JOINTS = 4  # fewer detected joints than this: the person is skipped
MIN_POSE_EXTENT_PX = 2.0  # confident joints spanning less than this: a degenerate pose
POSE_IMAGE = "demo_pose2d.png"
MESH_IMAGE = "demo_mesh.png"
SIDE_IMAGE = "demo_mesh_side.png"
IMAGE_NAMES = {"pose2d": POSE_IMAGE, "mesh": MESH_IMAGE, "side": SIDE_IMAGE}
OBJ_NAME = "demo_mesh_{}.obj"
PARAMS_NAME = "demo_mesh_{}_anny.json"
# Shipped config (pose2mesh.assets.config_path) used with --weights when neither --cfg nor a
# config saved in the checkpoint exists.
FALLBACK_CONFIGS = {
    "human36": "pose2mesh_human36J_test_synthetic.yml",
    "coco": "pose2mesh_cocoJ_test_synthetic.yml",
    "mano": "pose2mesh_manoJ_test_synthetic_hand.yml",
    "smpl": "pose2mesh_smplJ_test_surreal.yml",
}
TRAIN_CONFIGS = {
    "coco": "asset/yaml/pose2mesh_cocoJ_train_synthetic.yml",
    "mano": "asset/yaml/pose2mesh_manoJ_train_synthetic_hand.yml",
    "smpl": "asset/yaml/pose2mesh_smplJ_train_surreal.yml",
}
_CHECKPOINT_KINDS = ("final", "best", "numbered")


# ----------------------------------------------------------------------------- model lookup
def find_default_weights(joint_set: str, roots: Sequence[str | Path], like=None) -> Path | None:
    """The newest ``final.pth.tar`` (else ``best.pth.tar``, else the newest numbered
    checkpoint) under ``<root>/*/checkpoint/`` whose saved config is a ``pose2mesh_net`` for
    the input ``joint_set`` (and, given a config ``like``, has its network-shape keys)."""
    from pose2mesh.engine.checkpoint import BEST_NAME, FINAL_NAME

    candidates = []
    for root in dict.fromkeys(Path(r).resolve() for r in roots):
        for path in root.glob("*/checkpoint/*.pth.tar") if root.is_dir() else ():
            if path.name == FINAL_NAME:
                kind, epoch = 0, 0
            elif path.name == BEST_NAME:
                kind, epoch = 1, 0
            elif path.name.startswith("checkpoint") and path.name[10:-8].isdigit():
                kind, epoch = 2, int(path.name[10:-8])
            else:
                continue
            candidates.append((kind, -path.stat().st_mtime, -epoch, path))
    for *_, path in sorted(candidates):
        saved = saved_config(path)
        if saved is not None and network_matches(saved, joint_set, like):
            return path
    return None


def _no_weights_message(joint_set: str, roots: Sequence[str | Path]) -> str:
    where = ", ".join(f"{Path(r)}/" for r in dict.fromkeys(str(r) for r in roots)) or "experiment/"
    if joint_set == "human36":
        how = "run `bash scripts/quickstart.sh` to train them"
    else:
        how = (f"train them with `python main/train.py --cfg {TRAIN_CONFIGS[joint_set]}` "
               "(scripts/quickstart.sh shows the recipe for human36)")
    shipped = (" (the shipped pretrained model has another network shape than --cfg; "
               "leave --cfg out to run it)" if joint_set in PRETRAINED_JOINT_SETS else "")
    return (f"no trained Pose2Mesh weights for joint set '{joint_set}' under {where}{shipped}: "
            f"{how}, or pass --weights FILE")


def resolve_model(
    joint_set: str,
    *,
    cfg_path: str | Path | None = None,
    weights: str | Path | None = None,
    opts: Sequence[str] = (),
    search_roots: Sequence[str | Path] = ("experiment",),
    pretrained_dir: str | Path = PRETRAINED_DIR,
):
    """The (frozen config, checkpoint path) the demo runs; see the module docstring.

    Args:
        joint_set: the input joint set name.
        cfg_path: ``--cfg`` (None: the checkpoint's saved config).
        weights: ``--weights``: a checkpoint file or an experiment/checkpoint folder.
        opts: ``KEY VALUE`` config overrides.
        search_roots: folders whose ``*/checkpoint/`` are searched for default weights.
        pretrained_dir: where the shipped models are (used when the search finds none).
    Raises:
        Pose2MeshError: no weights found, config for another joint set or not a mesh model,
            unreadable files, bad overrides.
    """
    get_joint_set(joint_set)  # unknown names fail here, with the valid ones listed
    opts = [*opts, *FORCED_OPTS]
    cfg = load_config(cfg_path, opts) if cfg_path is not None else None
    weights_path = _find_weights(joint_set, cfg, weights, search_roots, pretrained_dir)
    source = str(cfg_path)
    if cfg is None:
        saved = saved_config(weights_path)
        source = (f"the config saved in {weights_path}" if saved is not None
                  else str(config_path(FALLBACK_CONFIGS[joint_set])))
        cfg = load_config(source if saved is None else saved, opts, source=source)
    if cfg.DATASET.input_joint_set != joint_set:
        raise Pose2MeshError(
            f"{source} is for joint set '{cfg.DATASET.input_joint_set}', but the input is "
            f"'{joint_set}' (--joint_set)")
    if cfg.MODEL.name != "pose2mesh_net":
        raise Pose2MeshError(
            f"{source}: MODEL.name is '{cfg.MODEL.name}'; the demo needs a mesh model "
            "('pose2mesh_net')")
    return cfg, weights_path


def _find_weights(joint_set: str, cfg, weights, search_roots: Sequence[str | Path],
                  pretrained_dir: str | Path) -> Path:
    """``weights``, else ``TEST.weight_path`` of ``cfg`` (None: no ``--cfg``) when that file
    exists, else :func:`find_default_weights` (like ``cfg``), else the shipped model (with
    ``cfg``: only one of its network shape)."""
    from pose2mesh.engine.evaluator import resolve_weights

    if weights:
        return resolve_weights(weights)
    if cfg is not None and cfg.TEST.weight_path and Path(cfg.TEST.weight_path).is_file():
        return Path(cfg.TEST.weight_path)
    found = find_default_weights(joint_set, search_roots, like=cfg)
    if found is None and joint_set in PRETRAINED_JOINT_SETS:
        found = (check_pretrained(joint_set, pretrained_dir) if cfg is None
                 else matching_pretrained(cfg, pretrained_dir))
    if found is None:
        raise Pose2MeshError(_no_weights_message(joint_set, search_roots))
    return found


def usable_people(people: Sequence[np.ndarray], source: str = "input") -> list[int]:
    """Indices of the people with at least :data:`MIN_CONFIDENT_JOINTS` confident joints
    (the others are skipped with a warning). Raises Pose2MeshError when nobody is usable or
    a person's confident joints all lie on one point (:data:`MIN_POSE_EXTENT_PX`)."""
    usable = []
    for index, pose in enumerate(people):
        confident = np.asarray(pose)[np.asarray(pose)[:, 2] > 0, :2]
        count = len(confident)
        if count >= MIN_CONFIDENT_JOINTS and np.ptp(confident, axis=0).max() < MIN_POSE_EXTENT_PX:
            raise Pose2MeshError(
                f"{source}: person {index}: its {count} confident joints lie within "
                f"{MIN_POSE_EXTENT_PX:g} px of each other (a degenerate pose, no body to fit)")
        if count >= MIN_CONFIDENT_JOINTS:
            usable.append(index)
        else:
            logger.warning("%s: person %d skipped: %d joints with positive confidence "
                           "(the demo needs %d)", source, index, count,
                           MIN_CONFIDENT_JOINTS)
    if not usable:
        raise Pose2MeshError(
            f"{source}: no person with at least {MIN_CONFIDENT_JOINTS} joints of positive "
            "confidence")
    return usable


# ----------------------------------------------------------------------------- camera
@dataclass(frozen=True)
class CameraFit:
    """Weak-perspective cameras ``uv = scale * XY + trans`` of P people (XY in metres).

    Attributes:
        scale_px_per_m: (P,) float64.
        trans_px: (P, 2) float64.
        error_px: (P,) confidence-weighted mean reprojection error of the fitted joints.
        spread_fallback: (P,) bool, True where the least-squares scale was not positive and
            the scale comes from the ratio of weighted RMS spreads.
    """

    scale_px_per_m: np.ndarray
    trans_px: np.ndarray
    error_px: np.ndarray
    spread_fallback: np.ndarray


def fit_cameras(joints_m: np.ndarray, poses_px: np.ndarray) -> CameraFit:
    """Fit one weak-perspective camera per person, in closed form.

    Args:
        joints_m: (P, J, 3) predicted joints, camera axes, metres (x, y used).
        poses_px: (P, J, 3) input ``[u, v, confidence]``; confidence <= 0 masks a joint.
    Raises:
        Pose2MeshError: a person with fewer than two weighted joints at distinct positions.
    """
    weights = poses_px[..., 2]
    scale, tx, ty = fit_weak_perspective(joints_m[..., :2], poses_px[..., :2], weights)
    fallback = ~(np.isfinite(scale) & (scale > 0))
    if fallback.any():
        w = np.where(weights > 0, weights, 0.0)[..., None]
        w_sum = w.sum(1, keepdims=True)
        xy_mean = (w * joints_m[..., :2]).sum(1, keepdims=True) / w_sum
        uv_mean = (w * poses_px[..., :2]).sum(1, keepdims=True) / w_sum
        spread_xy = (w * (joints_m[..., :2] - xy_mean) ** 2).sum((1, 2))
        spread_uv = (w * (poses_px[..., :2] - uv_mean) ** 2).sum((1, 2))
        alt = np.sqrt(spread_uv / np.maximum(spread_xy, 1e-30))
        alt_t = uv_mean[:, 0] - alt[:, None] * xy_mean[:, 0]
        scale = np.where(fallback, alt, scale)
        tx = np.where(fallback, alt_t[:, 0], tx)
        ty = np.where(fallback, alt_t[:, 1], ty)
    error = weak_perspective_reprojection_error(joints_m, poses_px, weights, scale, tx, ty)
    return CameraFit(scale_px_per_m=np.asarray(scale, np.float64),
                     trans_px=np.stack([tx, ty], -1).astype(np.float64),
                     error_px=np.asarray(error, np.float64).reshape(-1),
                     spread_fallback=fallback)


def default_focal_px(image_hw: Sequence[int], fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length (pixels) giving a ``fov_deg`` field of view across the longer side."""
    return max(image_hw) / (2.0 * math.tan(math.radians(fov_deg) / 2.0))


def pinhole_reprojection_error(joints_cam_m, poses_px, focal_px: float, princpt_px) -> np.ndarray:
    """(P,) confidence-weighted mean pixel distance between pinhole-projected camera-frame
    joints (P, J, 3) and the input (P, J, 3) ``[u, v, confidence]``."""
    z = np.maximum(joints_cam_m[..., 2:3], 1e-8)
    uv = joints_cam_m[..., :2] / z * focal_px + np.asarray(princpt_px)
    w = np.where(poses_px[..., 2] > 0, poses_px[..., 2], 0.0)
    dist = np.linalg.norm(uv - poses_px[..., :2], axis=-1)
    return (w * dist).sum(-1) / np.maximum(w.sum(-1), 1e-30)


# ----------------------------------------------------------------------------- results
@dataclass
class PersonResult:
    """One person of the input.

    Attributes:
        index: the person's index in the input file (``demo_mesh_<index>.obj``).
        pose_px: (J, 3) input ``[u, v, confidence]``.
        filled_pose_px: (J, 3) with missing joints positioned (confidence still 0).
        mesh_m: (V, 3) predicted root-relative mesh (camera axes, metres).
        joints_m: (J, 3) input-set joints regressed from ``mesh_m``.
        scale_px_per_m, trans_px: the fitted weak-perspective camera.
        translation_m: (3,) camera-frame translation of the rendered mesh.
        error_px: weak-perspective fit's weighted mean reprojection error.
        render_error_px: the same for the joints as rendered (pinhole).
        spread_fallback: the scale came from the spread ratio (see :func:`fit_cameras`).
        body: the fitted anny parameters (``pose_aa`` (NB, 3), ``phenotype`` (6,),
            ``transl_m`` (3,) root-relative, ``fit_error_mm``: mean distance to the network's
            mesh, ``fit_2d``: whether the fit followed the input 2D pose), None for a raw
            network mesh.
    """

    index: int
    pose_px: np.ndarray
    filled_pose_px: np.ndarray
    mesh_m: np.ndarray
    joints_m: np.ndarray
    scale_px_per_m: float
    trans_px: np.ndarray
    translation_m: np.ndarray
    error_px: float
    render_error_px: float
    spread_fallback: bool
    body: dict | None = None

    @property
    def mesh_cam_m(self) -> np.ndarray:
        """(V, 3) the mesh placed in the camera frame (what is rendered and saved)."""
        return self.mesh_m + self.translation_m

    @property
    def num_confident(self) -> int:
        return int((self.pose_px[:, 2] > 0).sum())


@dataclass
class DemoResult:
    """What one demo run produced. ``files`` maps output kinds (``pose2d``, ``mesh``,
    ``side``, ``obj_<i>``) to paths; ``timings_ms`` the stages' wall times."""

    people: list[PersonResult]
    image_hw: tuple[int, int]
    focal_px: float
    princpt_px: tuple[float, float]
    renderer: str
    files: dict[str, Path] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """What :meth:`DemoRunner.predict_bodies` gives for P people.

    Attributes:
        poses_px: (P, J, 3) input ``[u, v, confidence]``.
        filled_px: (P, J, 3) with missing joints positioned (confidence still 0).
        meshes_m: (P, V, 3) output meshes (fitted bodies or network meshes), root-relative,
            camera axes, metres, float64.
        joints_m: (P, J, 3) their input-set joints.
        body_fit: the anny body fit, None for raw network meshes.
    """

    poses_px: np.ndarray
    filled_px: np.ndarray
    meshes_m: np.ndarray
    joints_m: np.ndarray
    body_fit: BodyFit | None


# ----------------------------------------------------------------------------- runner
class DemoRunner:
    """A loaded model that turns 2D poses into meshes, pictures and OBJ files.

    Args:
        model: a Pose2Mesh network, ``(B, J, 2) -> {"mesh_m": (B, V, 3), ...}``, in eval mode.
        body_model: its BodyModel (faces, joint regressor of ``joint_set``).
        joint_set: the input joint set.
        focal_px: rendering focal length; None = :func:`default_focal_px` of each picture.
        renderer: ``"auto"`` or a backend of :data:`pose2mesh.vis.BACKENDS`.
        fitter: the anny body fit (None: the network's mesh is rendered).
        fit_2d: give the fitter the input 2D poses (its keypoint term; module docstring,
            step 3); False fits the network's mesh only.
    """

    def __init__(self, model: torch.nn.Module, body_model, joint_set: JointSet | str, *,
                 focal_px: float | None = None, renderer: str = "auto",
                 fitter: AnnyBodyFitter | None = None, fit_2d: bool = True):
        self.model = model.eval()
        self.body_model = body_model
        self.fitter = fitter
        self.fit_2d = bool(fit_2d)
        self.joint_set = get_joint_set(joint_set) if isinstance(joint_set, str) else joint_set
        self.device = body_model.faces.device
        self.output_body = fitter.output_body if fitter is not None else body_model
        self.faces = self.output_body.faces.detach().cpu().numpy()
        self.focal_px = focal_px
        self.renderer = renderer
        self.output_body.joint_regressor(self.joint_set.name)  # a missing regressor fails here

    @classmethod
    def from_config(cls, cfg, weights: str | Path, *, gpu: str = "", fit_body: bool = True,
                    fit_iterations: int = 40, fit_2d: bool = True,
                    fit_2d_weight: float | None = None, **kwargs) -> "DemoRunner":
        """Load the network of ``cfg`` with the weights of ``weights``
        (:func:`pose2mesh.api.load_network`); ``gpu``: ``--gpu`` ids (first one used).
        ``fit_body`` (anny bodies only): fit the full-resolution anny body to each predicted
        mesh (:mod:`pose2mesh.body_fit`) and render that; False renders the raw network mesh.
        ``fit_2d``: that fit also follows the input 2D poses, with weight ``fit_2d_weight``
        (``AnnyBodyFitter.keypoint_weight``; None: :data:`DEFAULT_KEYPOINT_WEIGHT`); False:
        the network's mesh only."""
        from pose2mesh.engine.distributed import DistContext, parse_gpu_ids, resolve_device

        device = resolve_device(cfg.DEVICE, parse_gpu_ids(gpu), DistContext())
        model, body_model, checkpoint = load_network(cfg, weights, device)
        shipped = " (shipped pretrained model)" if "source" in checkpoint else ""
        logger.info("model: %s%s (epoch %s), body model %s/%s (%d vertices), device %s",
                    weights, shipped, checkpoint.get("epoch", "?"), cfg.MODEL.body_model,
                    cfg.MODEL.topology, body_model.num_vertices, device)
        fitter = None
        if fit_body and cfg.MODEL.body_model == "anny":
            from pose2mesh.body_models.anny_model import build_anny_body

            full_body = build_anny_body("default").to(device)
            if fit_2d_weight is None:
                fit_2d_weight = DEFAULT_KEYPOINT_WEIGHT
            fitter = AnnyBodyFitter(body_model, full_body, iterations=fit_iterations,
                                    keypoint_weight=fit_2d_weight).to(device)
            fit_2d = fit_2d and fit_2d_weight > 0
            follows = (f" and to the input 2D pose (weight {fit_2d_weight:g}; --no_fit_2d: "
                       "the mesh only)" if fit_2d else " only (no 2D keypoint term)")
            logger.info("body fit: anny parameters fitted to the network mesh%s, rendered on "
                        "the %d-vertex body (--raw_mesh renders the network mesh)", follows,
                        full_body.num_vertices)
        return cls(model, body_model, cfg.DATASET.input_joint_set, fitter=fitter,
                   fit_2d=fit_2d, **kwargs)

    @torch.no_grad()
    def predict(self, filled_poses_px: np.ndarray) -> torch.Tensor:
        """(P, J, 2+) pixel poses without missing joints -> the network's meshes (P, V, 3),
        root-relative, camera axes, metres, on the model's device."""
        xy = torch.as_tensor(np.asarray(filled_poses_px)[..., :2], dtype=torch.float32,
                             device=self.device)
        return self.model(standardize_pose2d(xy))["mesh_m"].float()

    def shape_output(self, mesh_m: torch.Tensor, poses_px: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, BodyFit | None]:
        """The meshes to place and render: the fitted full-resolution bodies (with a fitter)
        or the network meshes, and their input-set joints, float64 NumPy (P, V, 3), (P, J, 3).
        ``poses_px``: the input poses (P, J, 3) ``[u, v, confidence]`` (missing joints at
        confidence 0) the body fit follows when :attr:`fit_2d` is on; None: the mesh only."""
        fit = None
        if self.fitter is not None:
            keypoints = None
            if self.fit_2d and poses_px is not None:
                keypoints = torch.as_tensor(np.asarray(poses_px)[..., :3], dtype=torch.float32,
                                            device=mesh_m.device)
            fit = self.fitter(mesh_m, keypoints, self.joint_set.name)
        vertices_m = fit.vertices_m if fit is not None else mesh_m
        with torch.no_grad():
            joints_m = self.output_body.regress_joints(vertices_m, self.joint_set.name)
        return (vertices_m.detach().cpu().numpy().astype(np.float64),
                joints_m.cpu().numpy().astype(np.float64), fit)

    @staticmethod
    def _auto_focal_px(image_hw, scale_px_per_m: np.ndarray, meshes_m: np.ndarray) -> float:
        """:func:`default_focal_px`, raised where needed so that every mesh lies at least
        :data:`MIN_DEPTH_RATIO` times its own depth extent from the camera (``Tz = f / s``):
        the weak-perspective fit assumes a shallow body, and a mesh too close for that (only
        a prediction far smaller than a body, e.g. from untrained weights) would otherwise
        cross the camera plane."""
        depth_extent = np.ptp(meshes_m[..., 2], axis=-1)
        needed = float(np.max(MIN_DEPTH_RATIO * depth_extent * scale_px_per_m))
        focal = default_focal_px(image_hw)
        if needed > focal:
            logger.info("focal length raised from %.0f to %.0f px to keep the meshes in front "
                        "of the camera", focal, needed)
        return max(focal, needed)

    def run(self, people: Sequence[np.ndarray], output_dir: str | Path, *,
            image: np.ndarray | None = None, source: str = "input") -> DemoResult:
        """Predict, place, render and write the outputs for the people of one pose file.

        Args:
            people: (J, 3) ``[u, v, confidence]`` arrays (:func:`load_pose_file`'s output).
            output_dir: created if needed.
            image: RGB uint8 (H, W, 3) photo to draw on; None = white canvas fitting the poses.
            source: the input's name for messages.
        """
        timings = {}
        with _timed(timings, "total"):
            indices = usable_people(people, source)
            poses = np.stack([np.asarray(people[i], np.float64) for i in indices])
            try:
                prediction = self.predict_bodies(poses, timings)
                result = self.place(prediction, indices, image, source, timings)
            except Pose2MeshError as err:
                raise Pose2MeshError(f"{source}: {err}") from None
            with _timed(timings, "render"):
                pictures = self.render(result, image)
            with _timed(timings, "write"):
                self.write(result, pictures, output_dir)
        result.timings_ms = timings
        _log_result(result, len(people))
        return result

    def predict_bodies(self, poses_px: np.ndarray, timings: dict[str, float]) -> Prediction:
        """Step 1: missing joints filled in, the network's meshes (``network``) and the
        output meshes with their joints (``body_fit``: :meth:`shape_output`) of the input
        poses (P, J, 3) ``[u, v, confidence]``."""
        filled = np.stack([fill_missing_joints(p, self.joint_set) for p in poses_px]).astype(
            np.float64)
        with _timed(timings, "network"):
            network_mesh_m = self.predict(filled)
        with _timed(timings, "body_fit"):
            meshes_m, joints_m, body_fit = self.shape_output(network_mesh_m, poses_px)
        return Prediction(poses_px, filled, meshes_m, joints_m, body_fit)

    def place(self, prediction: Prediction, indices: Sequence[int], image: np.ndarray | None,
              source: str, timings: dict[str, float]) -> DemoResult:
        """Step 2: the weak-perspective camera of each person (``camera_fit``), the picture
        size, the pinhole camera and each mesh's translation in its frame; ``indices``: the
        people's indices in the input file."""
        with _timed(timings, "camera_fit"):
            fit = fit_cameras(prediction.joints_m, prediction.poses_px)
        filled = prediction.filled_px
        image_hw = tuple(image.shape[:2]) if image is not None else canvas_shape_for_pose(filled)
        if image is not None:
            _warn_if_outside(filled, image_hw, source)
        focal = float(self.focal_px) if self.focal_px else self._auto_focal_px(
            image_hw, fit.scale_px_per_m, prediction.meshes_m)
        princpt = (0.5 * (image_hw[1] - 1), 0.5 * (image_hw[0] - 1))
        translation = weak_to_perspective_translation(
            fit.scale_px_per_m, fit.trans_px[:, 0], fit.trans_px[:, 1], focal, princpt)
        render_error = pinhole_reprojection_error(prediction.joints_m + translation[:, None],
                                                  prediction.poses_px, focal, princpt)
        body = prediction.body_fit
        people = [PersonResult(
            index=index, pose_px=prediction.poses_px[k], filled_pose_px=filled[k],
            mesh_m=prediction.meshes_m[k], joints_m=prediction.joints_m[k],
            scale_px_per_m=float(fit.scale_px_per_m[k]), trans_px=fit.trans_px[k],
            translation_m=translation[k], error_px=float(fit.error_px[k]),
            render_error_px=float(render_error[k]), spread_fallback=bool(fit.spread_fallback[k]),
            body=None if body is None else _body_parameters(body, k))
            for k, index in enumerate(indices)]
        return DemoResult(people=people, image_hw=image_hw, focal_px=focal, princpt_px=princpt,
                          renderer="none")

    def render(self, result: DemoResult, image: np.ndarray | None) -> dict[str, np.ndarray]:
        """Step 3: the pictures (RGB uint8) by output kind -- ``pose2d`` (the skeletons),
        ``mesh`` (the placed meshes over ``image`` or a white canvas), ``side`` (turned 90
        degrees); sets ``result.renderer``."""
        placed = [person.mesh_cam_m for person in result.people]
        focal, princpt, image_hw = result.focal_px, result.princpt_px, result.image_hw
        background = image if image is not None else image_hw
        mesh_rgb, result.renderer = render_meshes(placed, self.faces, focal, princpt, background,
                                                  backend=self.renderer)
        side_rgb, _ = render_side_view(placed, self.faces, focal, princpt, image_hw,
                                       backend=self.renderer)
        pose_rgb = draw_people(image, [person.filled_pose_px for person in result.people],
                               self.joint_set, image_hw, [person.index for person in result.people])
        return {"pose2d": pose_rgb, "mesh": mesh_rgb, "side": side_rgb}

    def write(self, result: DemoResult, pictures: dict[str, np.ndarray],
              output_dir: str | Path) -> None:
        """Step 4: the pictures, ``demo_mesh_<i>.obj`` and (body fit)
        ``demo_mesh_<i>_anny.json`` per person into ``output_dir`` (created), recorded in
        ``result.files``."""
        output_dir = Path(output_dir)
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise Pose2MeshError(f"{output_dir}: cannot create the output folder "
                                 f"({err.strerror or err})") from None
        for kind, rgb in pictures.items():
            result.files[kind] = write_image(output_dir / IMAGE_NAMES[kind], rgb)
        for person in result.people:
            result.files[f"obj_{person.index}"] = save_obj(
                output_dir / OBJ_NAME.format(person.index), person.mesh_cam_m, self.faces)
            if person.body is not None:
                result.files[f"anny_{person.index}"] = write_body_parameters(
                    output_dir / PARAMS_NAME.format(person.index), person, result,
                    self.output_body)


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Record the wall time of the block in ``timings[stage]`` (milliseconds)."""
    start = time.perf_counter()
    yield
    timings[stage] = (time.perf_counter() - start) * 1e3


def _body_parameters(fit: BodyFit, k: int) -> dict:
    return {"pose_aa": fit.pose_aa[k].detach().cpu().double().numpy(),
            "phenotype": fit.phenotype[k].detach().cpu().double().numpy(),
            "transl_m": fit.transl_m[k].detach().cpu().double().numpy(),
            "fit_error_mm": float(fit.vertex_error_mm[k]),
            "fit_2d": fit.camera is not None}


def write_body_parameters(path: Path, person: PersonResult, result: "DemoResult",
                          body_model) -> Path:
    """``demo_mesh_<i>_anny.json``: the person's fitted anny body and camera.

    ``build_anny_body("default")(pose_aa=..., phenotype=..., transl_m=...).vertices_m`` with
    these values gives the vertices of ``demo_mesh_<i>.obj`` (camera frame: x right, y down,
    z forward, metres); the pinhole camera (focal, principal point) renders them onto the
    picture."""
    import json

    from pose2mesh.vis.mesh_io import atomic_write_bytes

    body = person.body
    record = {
        "body_model": "anny", "rig": "anny", "topology": "default",
        "frame": "camera: x right, y down, z forward, metres",
        "bone_labels": list(body_model.bone_labels),
        "pose_aa_rad": body["pose_aa"].round(6).tolist(),
        "phenotype": dict(zip(body_model.phenotype_labels, body["phenotype"].round(6).tolist())),
        "transl_m": (body["transl_m"] + person.translation_m).round(6).tolist(),
        "camera": {"focal_px": result.focal_px, "princpt_px": list(result.princpt_px),
                   "image_hw": list(result.image_hw),
                   "weak_perspective": {"scale_px_per_m": person.scale_px_per_m,
                                        "trans_px": person.trans_px.tolist()}},
        "fit_vertex_error_mm": round(body["fit_error_mm"], 3),
        "fit_follows_2d": body["fit_2d"],
        "camera_fit_error_px": round(person.error_px, 3),
    }
    return atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())


def _warn_if_outside(poses_px: np.ndarray, image_hw, source: str) -> None:
    xy = poses_px[..., :2].reshape(-1, 2)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < image_hw[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < image_hw[0])
    if inside.mean() < 0.5:
        logger.warning("%s: %d%% of the joints lie outside the %dx%d image; is it the right "
                       "image?", source, round(100 * (1 - inside.mean())), image_hw[1],
                       image_hw[0])


def _log_result(result: DemoResult, num_input_people: int) -> None:
    for person in result.people:
        note = ("; least-squares scale was not positive, scale from the spread ratio "
                "(prediction does not match the input)" if person.spread_fallback else "")
        if person.body is not None:
            note += "; body fit %.1f mm from the network mesh%s" % (
                person.body["fit_error_mm"], ", following the 2D" if person.body["fit_2d"] else "")
        tx, ty, tz = person.translation_m
        logger.info(
            "person %d: camera fit mean reprojection error %.2f px over %d/%d joints "
            "(as rendered %.2f px; scale %.1f px/m, mesh at (%.2f, %.2f, %.2f) m, focal %.0f px)"
            "%s; renderer %s", person.index, person.error_px, person.num_confident,
            len(person.pose_px), person.render_error_px, person.scale_px_per_m, tx, ty, tz,
            result.focal_px, note, result.renderer)
    names = ", ".join(path.name for path in result.files.values())
    folder = next(iter(result.files.values())).parent
    logger.info("%d of %d people; wrote %s/: %s", len(result.people), num_input_people, folder,
                names)
    logger.info("timings: %s", ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items()))
