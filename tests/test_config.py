"""Strict config merging: defaults, YAML files, KEY VALUE overrides, one-line errors."""
import re

import pytest

from pose2mesh.config import get_default_config, load_config
from pose2mesh.errors import Pose2MeshError

ORIGINAL_DEFAULTS = {
    ("DATASET", "train_list"): ["Human36M", "COCO", "MuCo"],
    ("DATASET", "test_list"): ["PW3D"],
    ("DATASET", "input_joint_set"): "coco",
    ("DATASET", "target_joint_set"): "human36",
    ("MODEL", "input_shape"): (384, 288),
    ("MODEL", "normal_loss_weight"): 0.1,
    ("MODEL", "edge_loss_weight"): 20.0,
    ("MODEL", "joint_loss_weight"): 1e-3,
    ("TRAIN", "batch_size"): 64,
    ("TRAIN", "end_epoch"): 40,
    ("TRAIN", "edge_loss_start"): 15,
    ("TRAIN", "lr_step"): [30],
    ("TRAIN", "optimizer"): "rmsprop",
    ("AUG", "flip"): False,
    ("TEST", "batch_size"): 64,
}


def test_original_defaults_present():
    cfg = get_default_config()
    for (section, key), value in ORIGINAL_DEFAULTS.items():
        assert cfg[section][key] == value, f"{section}.{key}"


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "exp.yml"
    path.write_text(
        "DATASET:\n  train_list: ['Synthetic']\n  input_joint_set: 'human36'\n"
        "MODEL:\n  input_shape: [384, 288]\nTRAIN:\n  lr: 0.01\n  lr_step: [5, 8]\n"
    )
    cfg = load_config(path, ["TRAIN.lr", "1e-4", "TRAIN.end_epoch", "3", "MODEL.name", "posenet"])
    assert cfg.DATASET.train_list == ["Synthetic"]
    assert cfg.DATASET.input_joint_set == "human36"
    assert list(cfg.MODEL.input_shape) == [384, 288]
    assert cfg.TRAIN.lr == pytest.approx(1e-4)
    assert cfg.TRAIN.lr_step == [5, 8]
    assert cfg.TRAIN.end_epoch == 3
    assert cfg.MODEL.name == "posenet"
    assert cfg.is_frozen()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("TRAIN:\n  resume_path: x\n", "unknown config key 'TRAIN.resume_path'"),
        ("SOLVER:\n  lr: 1\n", "unknown config section 'SOLVER'"),
        ("TRAIN: 3\n", "config section 'TRAIN'"),
        ("TRAIN:\n  lr: fast\n", "bad config value"),
        ("TRAIN: [unclosed\n", "cannot parse config file"),
    ],
)
def test_bad_yaml_gives_one_line_naming_key_and_file(tmp_path, text, expected):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(Pose2MeshError) as info:
        load_config(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    if "parse" not in expected:
        assert str(path) in message


def test_bad_overrides():
    with pytest.raises(Pose2MeshError, match="unknown config key 'TRAIN.nope'"):
        load_config(None, ["TRAIN.nope", "1"])
    with pytest.raises(Pose2MeshError, match="KEY VALUE pairs"):
        load_config(None, ["TRAIN.lr"])


def test_missing_file():
    with pytest.raises(Pose2MeshError, match="config file not found"):
        load_config("does/not/exist.yml")


def test_every_shipped_config_loads():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[1] / "asset" / "yaml").glob("*.yml"))
    assert configs, "no configs shipped under asset/yaml"
    for path in configs:
        cfg = load_config(path)
        assert cfg.MODEL.name in ("posenet", "hgn", "pose2mesh_net"), path


@pytest.mark.parametrize("key, value, expected", [
    ("TEST.batch_size", "-1", ">= 1"), ("TRAIN.lr", "-1.0", "> 0"), ("SYNTHETIC.train_size", "0", ">= 1"),
    ("SYNTHETIC.test_size", "0", ">= 1"), ("MODEL.posenet_hidden", "0", ">= 1"), ("SEED", "-5", ">= 0"),
    ("SYNTHETIC.noise_2d", "gausian", "one of ['none', 'gaussian']"),
    ("MODEL.input_shape", "[1,2,3]", "two positive integers"),
])
def test_out_of_range_values_are_one_line_errors(key, value, expected):
    with pytest.raises(Pose2MeshError, match=rf"config value {re.escape(key)} = .* is invalid: expected {re.escape(expected)}") as info:
        load_config(None, [key, value])
    assert "\n" not in str(info.value)


def test_an_integer_is_accepted_where_a_float_is_expected():
    cfg = load_config(None, ["TRAIN.lr", "1", "SYNTHETIC.mocap_ratio", "1"])
    assert cfg.TRAIN.lr == 1.0 and isinstance(cfg.TRAIN.lr, float) and cfg.SYNTHETIC.mocap_ratio == 1.0
