"""Experiment configuration: yacs defaults and strict YAML / command-line merging.

Every key of the original Pose2Mesh config exists here with its original default, plus the
keys this framework adds (body model, synthetic data, device, AMP, compile, seed, ...).
A YAML file or a ``KEY VALUE`` override that names a key not defined below is an error that
names the key and its source; so is a value of the wrong type (an integer where a float is
expected is taken as that float) and, for the keys of :data:`_VALUE_RULES`, a value outside
its range or choices.

Usage::

    cfg = load_config("asset/yaml/pose2mesh_human36J_train_synthetic.yml", ["TRAIN.lr", "1e-4"])
"""
from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from yacs.config import CfgNode

from pose2mesh.errors import Pose2MeshError, too_deeply_nested

_C = CfgNode()

# Paths (relative paths are resolved against the current working directory).
_C.DATA_DIR = "data"
_C.SMPL_DIR = "smplpytorch"
_C.MANO_DIR = "manopth"
_C.OUTPUT_ROOT = "experiment"
_C.DEVICE = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
_C.SEED = 123

_C.DATASET = CfgNode()
_C.DATASET.train_list = ["Human36M", "COCO", "MuCo"]
_C.DATASET.test_list = ["PW3D"]
_C.DATASET.input_joint_set = "coco"
_C.DATASET.target_joint_set = "human36"
_C.DATASET.workers = 16
_C.DATASET.use_gt_input = True
_C.DATASET.debug_max_samples = 0  # > 0 truncates every dataset (used by --debug)

# The embedded synthetic dataset (``Synthetic`` in train_list / test_list).
_C.SYNTHETIC = CfgNode()
_C.SYNTHETIC.train_size = 20000  # samples drawn per training epoch (fresh every epoch)
_C.SYNTHETIC.test_size = 2000  # fixed test split, defined by test_seed
_C.SYNTHETIC.test_seed = 20201  # the test split's seed; the train stream never uses it
_C.SYNTHETIC.all_ages = False  # False: adults only; True: anny's whole age range
_C.SYNTHETIC.key_pose_prob = 0.7  # chance a body pose starts from a blended key pose
_C.SYNTHETIC.pose_noise_deg = 12.0  # std of the per-joint rotation noise (degrees)
_C.SYNTHETIC.pose_source = "mix"  # training body poses: "prior", "mocap" or "mix"
_C.SYNTHETIC.mocap_ratio = 0.7  # with "mix": share of training poses drawn from mocap
_C.SYNTHETIC.mocap_path = ""  # pose library (.npz); "" = asset/mocap/cmu_anny_poses.npz
_C.SYNTHETIC.test_split = "synthetic"  # "synthetic" (prior poses) or "real_motion" (mocap subject 006)
_C.SYNTHETIC.focal_px = [1000.0, 1600.0]  # focal length range (pixels)
_C.SYNTHETIC.image_size = [1000, 1000]  # (width, height) of the virtual image (pixels)
_C.SYNTHETIC.distance_m = [3.0, 7.0]  # camera distance range (metres); hands use 1/10
_C.SYNTHETIC.elevation_deg = [-15.0, 30.0]
_C.SYNTHETIC.roll_deg = [-8.0, 8.0]
_C.SYNTHETIC.noise_2d = "none"  # "none", "gaussian" (detector-like) for train inputs
_C.SYNTHETIC.noise_2d_std_px = 4.0
_C.SYNTHETIC.noise_2d_outlier_prob = 0.03

_C.MODEL = CfgNode()
_C.MODEL.name = "pose2mesh_net"  # or a lifting-only run: "posenet", "hgn"
_C.MODEL.lifter = "posenet"  # pose2mesh_net's first stage: "posenet" or "hgn"
_C.MODEL.input_shape = (384, 288)  # (H, W) of the virtual crop
_C.MODEL.normal_loss_weight = 0.1
_C.MODEL.edge_loss_weight = 20.0
_C.MODEL.joint_loss_weight = 1e-3
_C.MODEL.posenet_pretrained = False
_C.MODEL.posenet_path = ""
_C.MODEL.body_model = "anny"  # "anny", "anny_hand", "smpl", "mano"
_C.MODEL.topology = "default"  # anny body topology ("default" = 13,718 vertices)
_C.MODEL.graph_levels = 0  # mesh coarsening levels; 0 = 9 for bodies, 6 for hands
_C.MODEL.cheb_order = 3
_C.MODEL.posenet_hidden = 4096
_C.MODEL.posenet_stages = 2
_C.MODEL.posenet_dropout = 0.5
_C.MODEL.hgn_hidden = 128  # channels of every HGN subnetwork
_C.MODEL.hgn_blocks = 4  # HGN stages
_C.MODEL.hgn_dropout = 0.0
_C.MODEL.hgn_mesh_nodes = [48, 96]  # HGN's mesh graphs: the hierarchy levels nearest these node counts
_C.MODEL.coarse_mesh_loss_weight = 1.0  # HGN's coarse-mesh constraint (0 = off)

_C.TRAIN = CfgNode()
_C.TRAIN.print_freq = 10
_C.TRAIN.batch_size = 64
_C.TRAIN.shuffle = True
_C.TRAIN.begin_epoch = 1
_C.TRAIN.end_epoch = 40
_C.TRAIN.edge_loss_start = 15
_C.TRAIN.scheduler = "step"
_C.TRAIN.lr = 1e-3
_C.TRAIN.lr_step = [30]
_C.TRAIN.lr_factor = 0.1
_C.TRAIN.optimizer = "rmsprop"  # "rmsprop" or "adam"
_C.TRAIN.amp = False  # autocast (bf16 on CPU, fp16 on CUDA)
_C.TRAIN.compile = False  # torch.compile the model
_C.TRAIN.grad_clip = 0.0  # > 0 clips the global gradient norm

_C.AUG = CfgNode()
_C.AUG.flip = False
_C.AUG.rotate_factor = 0

_C.TEST = CfgNode()
_C.TEST.batch_size = 64
_C.TEST.shuffle = False
_C.TEST.weight_path = ""
_C.TEST.vis = False


def get_default_config() -> CfgNode:
    """A fresh, mutable copy of the defaults."""
    return _C.clone()


def _check_keys(node: CfgNode, values: Mapping, source: str, prefix: str = "") -> None:
    """Raise Pose2MeshError for the first key in ``values`` that ``node`` does not define."""
    for key, value in values.items():
        full_key = f"{prefix}{key}"
        if key not in node:
            kind = "section" if isinstance(value, Mapping) and not prefix else "key"
            raise Pose2MeshError(f"unknown config {kind} '{full_key}' in {source}")
        if isinstance(node[key], CfgNode):
            if not isinstance(value, Mapping):
                raise Pose2MeshError(
                    f"config section '{full_key}' in {source} must be a mapping, got {value!r}"
                )
            _check_keys(node[key], value, source, prefix=f"{full_key}.")


def _with_floats(node: CfgNode, values: Mapping) -> dict:
    """``values`` with integers turned into floats where the default is a float
    (``TRAIN.lr 1`` means 1.0)."""
    out = {}
    for key, value in values.items():
        default = node[key]
        if isinstance(default, CfgNode) and isinstance(value, Mapping):
            value = _with_floats(default, value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[key] = value
    return out


def _at_least(low):
    return lambda v: v >= low, f">= {low}"


def _positive():
    return lambda v: v > 0, "> 0"


def _within(low, high):
    return lambda v: low <= v <= high, f"in [{low}, {high}]"


def _one_of(*choices):
    return lambda v: str(v).lower() in choices, f"one of {list(choices)}"


def _size_pair():
    return (lambda v: len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v),
            "two positive integers (H, W)")


_VALUE_RULES = {
    "SEED": _at_least(0), "DATASET.workers": _at_least(0), "DATASET.debug_max_samples": _at_least(0),
    "SYNTHETIC.train_size": _at_least(1), "SYNTHETIC.test_size": _at_least(1),
    "SYNTHETIC.mocap_ratio": _within(0.0, 1.0), "SYNTHETIC.noise_2d": _one_of("none", "gaussian"),
    "SYNTHETIC.noise_2d_std_px": _at_least(0.0), "SYNTHETIC.noise_2d_outlier_prob": _within(0.0, 1.0),
    "SYNTHETIC.pose_source": _one_of("prior", "mocap", "mix"),
    "SYNTHETIC.test_split": _one_of("synthetic", "real_motion"),
    "SYNTHETIC.key_pose_prob": _within(0.0, 1.0), "SYNTHETIC.pose_noise_deg": _at_least(0.0),
    "MODEL.input_shape": _size_pair(), "MODEL.posenet_hidden": _at_least(1),
    "MODEL.posenet_stages": _at_least(1), "MODEL.posenet_dropout": _within(0.0, 0.99),
    "MODEL.cheb_order": _at_least(1), "MODEL.graph_levels": _at_least(0),
    "MODEL.lifter": _one_of("posenet", "hgn"),
    "MODEL.hgn_hidden": _at_least(1), "MODEL.hgn_blocks": _at_least(1), "MODEL.hgn_dropout": _within(0.0, 0.99),
    "MODEL.coarse_mesh_loss_weight": _at_least(0.0),
    "TRAIN.batch_size": _at_least(1), "TRAIN.print_freq": _at_least(1), "TRAIN.begin_epoch": _at_least(1),
    "TRAIN.end_epoch": _at_least(1), "TRAIN.edge_loss_start": _at_least(0), "TRAIN.lr": _positive(),
    "TRAIN.lr_factor": _positive(), "TRAIN.grad_clip": _at_least(0.0),
    "TRAIN.optimizer": _one_of("rmsprop", "adam"), "TRAIN.scheduler": _one_of("step", "platue"),
    "AUG.rotate_factor": _at_least(0), "TEST.batch_size": _at_least(1),
}
"""Range or choice of each checked key: (test, what is expected)."""


def _check_values(cfg: CfgNode) -> None:
    """Raise Pose2MeshError for the first value outside its :data:`_VALUE_RULES` range."""
    for key, (test, expected) in _VALUE_RULES.items():
        section, _, leaf = key.rpartition(".")
        value = cfg[section][leaf] if section else cfg[leaf]
        if not test(value):
            raise Pose2MeshError(f"config value {key} = {value!r} is invalid: expected {expected}")
    name, lifter = cfg.MODEL.name, cfg.MODEL.lifter
    if name != "pose2mesh_net" and lifter not in ("posenet", name):
        raise Pose2MeshError(f"MODEL.lifter '{lifter}' picks pose2mesh_net's first stage; a lifting-only "
                             f"run is named by MODEL.name (here '{name}'): set MODEL.name '{lifter}'")


def _merge(cfg: CfgNode, values: Mapping, source: str) -> None:
    _check_keys(cfg, values, source)
    values = _with_floats(cfg, values)
    try:
        cfg.merge_from_other_cfg(CfgNode(dict(values)))
    except (ValueError, KeyError) as err:
        message = str(err).strip("'\"").splitlines()[0]
        raise Pose2MeshError(f"bad config value in {source}: {message}") from None
    except (MemoryError, RecursionError):  # yacs literal_evals strings: "-" * 100000 + "1"
        raise too_deeply_nested(f"a config value in {source}") from None


def _parse_override(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):  # deep nesting: the latter two
        return text  # then read as a string, which the key's type check refuses in one line


def _overrides_to_dict(opts: Sequence[str]) -> dict:
    if len(opts) % 2:
        raise Pose2MeshError(
            f"config overrides must be KEY VALUE pairs, got an odd count: {list(opts)}"
        )
    nested: dict = {}
    for key, text in zip(opts[0::2], opts[1::2]):
        *sections, leaf = key.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = _parse_override(text)
    return nested


def load_config(path: str | Path | Mapping | None = None, opts: Sequence[str] = (), *,
                source: str | None = None) -> CfgNode:
    """Defaults, then a YAML file at ``path`` (or a mapping of the same layout, e.g. the config
    saved in a checkpoint), then ``KEY VALUE`` overrides.

    Args:
        source: how messages name a mapping ``path`` (default: "the given config").
    Raises:
        Pose2MeshError: missing/unparsable file, unknown section or key, wrong value type.
    Returns:
        A frozen CfgNode.
    """
    cfg = get_default_config()
    if isinstance(path, Mapping):
        _merge(cfg, path, source or "the given config")
    elif path is not None:
        path = Path(path)
        if not path.is_file():
            raise Pose2MeshError(f"config file not found: {path}")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            first_line = str(err).splitlines()[0]
            raise Pose2MeshError(f"cannot parse config file {path}: {first_line}") from None
        except RecursionError:
            raise too_deeply_nested(f"config file {path}") from None
        if not isinstance(values, Mapping):
            raise Pose2MeshError(f"config file {path} must hold a mapping at top level")
        _merge(cfg, values, str(path))
    if opts:
        _merge(cfg, _overrides_to_dict(opts), "command-line overrides")
    _check_values(cfg)
    cfg.freeze()
    return cfg
