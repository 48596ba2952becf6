"""Checkpoint files: atomic writes survive a crash mid-save, RNG states round-trip, the
newest checkpoint is found, and wrong weights give one-line errors."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pose2mesh.engine import checkpoint as ckpt
from pose2mesh.engine.trainer import Trainer
from pose2mesh.errors import Pose2MeshError
from test_engine import TinyNet, fit, make_trainer, tiny_cfg


def crashing_save(obj, path, *args, **kwargs):
    """torch.save that writes half a file, then dies (disk full, kill, power cut...)."""
    with open(path, "wb") as handle:
        handle.write(b"PK\x03\x04 partial checkpoint")
    raise OSError(28, "No space left on device")


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "final.pth.tar"
    good = {"epoch": 1, "model_state_dict": {"w": torch.ones(3)}}
    ckpt.save_checkpoint(good, tmp_path, is_final=True, is_best=True)

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint({"epoch": 2, "model_state_dict": {"w": torch.zeros(3)}}, tmp_path,
                             is_final=True, is_best=True)
    monkeypatch.undo()

    for name in ("final.pth.tar", "best.pth.tar"):
        loaded = ckpt.load_checkpoint(tmp_path / name)
        assert loaded["epoch"] == 1 and torch.equal(loaded["model_state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth.tar", "final.pth.tar"]
    assert ckpt.latest_checkpoint(tmp_path) == path


def test_crash_during_training_save_leaves_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = make_trainer(tiny_cfg("pose2mesh_net", "TRAIN.end_epoch", 3), tmp_path / "exp")
    end_epoch = Trainer._end_epoch

    def crash_from_epoch_2(self, epoch, *args):
        if epoch == 2:
            monkeypatch.setattr(torch, "save", crashing_save)
        end_epoch(self, epoch, *args)

    monkeypatch.setattr(Trainer, "_end_epoch", crash_from_epoch_2)
    with pytest.raises(Pose2MeshError, match="No space left on device; is the disk full"):
        fit(trainer)
    monkeypatch.undo()
    directory = trainer.exp.checkpoint
    assert sorted(p.name for p in directory.iterdir()) == ["best.pth.tar", "checkpoint1.pth.tar"]
    assert ckpt.latest_checkpoint(directory) == directory / "checkpoint1.pth.tar"
    assert ckpt.load_checkpoint(directory / "checkpoint1.pth.tar")["epoch"] == 1


def test_training_checkpoint_has_original_keys_and_loads_weights_only(tmp_path):
    trainer = make_trainer(tiny_cfg("pose2mesh_net", "TRAIN.end_epoch", 1), tmp_path / "exp")
    fit(trainer)
    path = trainer.exp.checkpoint / "final.pth.tar"
    loaded = torch.load(path, weights_only=True)
    original = {"epoch", "model_state_dict", "optim_state_dict", "scheduler_state_dict", "train_log", "test_log"}
    extra = {"rng_states", "best_metric", "best_epoch", "scaler_state_dict", "config", "world_size"}
    assert original | extra <= set(loaded)
    assert set(loaded["test_log"]) == {"joint", "surface"} and len(loaded["rng_states"]) == 1
    assert "MODEL:" in loaded["config"]
    model = TinyNet(12, True)
    ckpt.load_model_weights(model, path)
    assert torch.equal(model.pose_head.weight, trainer.raw_model.pose_head.weight)


def test_rng_state_round_trip():
    state = ckpt.capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    ckpt.restore_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]
    with ckpt.preserved_rng_state():
        torch.rand(100)
    assert not torch.equal(torch.rand(3), again[0])


def test_latest_checkpoint_ordering(tmp_path):
    assert ckpt.latest_checkpoint(tmp_path) is None
    for epoch in (2, 10, 9):
        ckpt.atomic_save({"epoch": epoch, "model_state_dict": {}}, tmp_path / ckpt.numbered_name(epoch))
    ckpt.atomic_save({"epoch": 1, "model_state_dict": {}}, tmp_path / ckpt.BEST_NAME)
    assert ckpt.latest_checkpoint(tmp_path).name == "checkpoint10.pth.tar"
    ckpt.atomic_save({"epoch": 12, "model_state_dict": {}}, tmp_path / ckpt.FINAL_NAME)
    assert ckpt.latest_checkpoint(tmp_path).name == "final.pth.tar"


def test_strip_module_prefix():
    state = {"module.a.weight": 1, "_orig_mod.module.b": 2, "c": 3}
    assert ckpt.strip_module_prefix(state) == {"a.weight": 1, "b": 2, "c": 3}


def test_bad_checkpoint_files_are_one_line_errors(tmp_path):
    with pytest.raises(Pose2MeshError, match="checkpoint file not found"):
        ckpt.load_checkpoint(tmp_path / "missing.pth.tar")
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(Pose2MeshError, match="cannot read checkpoint") as info:
        ckpt.load_checkpoint(truncated)
    assert "\n" not in str(info.value)
    text = tmp_path / "notes.pth.tar"
    text.write_text("these are not weights\n")
    with pytest.raises(Pose2MeshError, match="cannot read checkpoint .*notes.pth.tar: not a PyTorch checkpoint"):
        ckpt.load_checkpoint(text)
    ckpt.atomic_save({"epoch": 1, "model_state_dict": {"other.weight": torch.zeros(2)}}, tmp_path / "x.pth.tar")
    with pytest.raises(Pose2MeshError, match="does not fit the model: .*missing keys.*unexpected keys"):
        ckpt.load_model_weights(TinyNet(12, True), tmp_path / "x.pth.tar")


class _RunsCode:
    """A pickle payload that would create ``marker`` when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused_by_every_command(tmp_path):
    """Hostile-file promise: no file passed as --weights is unpickled beyond tensors and
    plain values; the demo and main/test.py refuse it in one line (exit 2)."""
    import subprocess
    import sys
    from pathlib import Path

    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pth.tar"
    torch.save({"model_state_dict": {}, "epoch": 1, "extra": _RunsCode(marker)}, evil)
    with pytest.raises(Pose2MeshError, match=r"refusing to load .*evil.pth.tar.*posix.system"):
        ckpt.load_checkpoint(evil)
    repo = Path(__file__).resolve().parents[1]
    pose = tmp_path / "pose.npy"
    np.save(pose, np.random.default_rng(0).uniform(50, 400, (17, 2)))
    commands = [
        [repo / "demo" / "run.py", "--input_pose", pose, "--weights", evil, "--output_dir", tmp_path / "out"],
        [repo / "main" / "test.py", "--cfg", repo / "asset" / "yaml" / "posenet_human36J_test_synthetic.yml",
         "--weights", evil, "--exp_dir", tmp_path / "exp", "SYNTHETIC.test_size", "8", "MODEL.posenet_hidden", "32",
         "MODEL.topology", "notoes_collapse10pc"],
    ]
    for command in commands:
        done = subprocess.run([sys.executable, *map(str, command)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("error: refusing to load") and str(evil) in lines[-1], lines
        assert not marker.exists()
    # Numpy scalars (as the original release's checkpoints hold) are plain values: they load.
    plain = tmp_path / "numpy_scalars.pth.tar"
    torch.save({"model_state_dict": {}, "epoch": np.int64(3), "error": np.float64(1.5)}, plain)
    assert ckpt.load_checkpoint(plain)["epoch"] == 3


def test_disk_full_during_a_save_is_one_line_and_keeps_earlier_checkpoints(tmp_path, monkeypatch):
    cfg = tiny_cfg("posenet", "TRAIN.end_epoch", 2)
    trainer = make_trainer(cfg, tmp_path / "exp")
    real_save = torch.save

    def full_disk(obj, path, *args, **kwargs):
        if obj.get("epoch") == 2:
            raise RuntimeError("[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed "
                               "writing file data/0: file write failed")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(Pose2MeshError, match=r"cannot write the epoch 2 checkpoint .*is the disk full\?\); "
                                             r"earlier checkpoints are intact, the last: .*checkpoint1.pth.tar") as info:
        fit(trainer)
    assert "\n" not in str(info.value)
    assert ckpt.load_checkpoint(trainer.exp.checkpoint / "checkpoint1.pth.tar")["epoch"] == 1
    assert not list(trainer.exp.checkpoint.glob(".*.tmp"))


def test_extending_a_finished_run_keeps_its_final_checkpoint_and_files_get_the_umask(tmp_path):
    import os

    state = {"epoch": 3, "model_state_dict": {}}
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    ckpt.save_checkpoint(state, folder, is_final=True, is_best=False)
    ckpt.save_checkpoint({**state, "epoch": 4}, folder, is_final=True, is_best=False)
    assert ckpt.load_checkpoint(folder / "checkpoint3.pth.tar")["epoch"] == 3
    assert ckpt.load_checkpoint(folder / "final.pth.tar")["epoch"] == 4
    mask = os.umask(0)
    os.umask(mask)
    assert (folder / "final.pth.tar").stat().st_mode & 0o777 == 0o666 & ~mask


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path):
    from pose2mesh.atomic_io import remove_stale_temporaries

    (tmp_path / ".checkpoint2.pth.tar.abc123.tmp").write_bytes(b"partial")
    (tmp_path / "checkpoint1.pth.tar").write_bytes(b"kept")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".checkpoint2.pth.tar.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint1.pth.tar"]
