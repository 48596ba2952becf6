"""Engine tests on tiny stand-ins that honour the contracts: a 12-vertex body model (an
icosahedron that bends and stretches), a random-pose dataset with a perspective camera, and
a small MLP with batch norm and dropout, trained with the real losses (the PoseNet lifter
loss, Pose2MeshCriterion). test_checkpoint.py and test_ddp.py import them. The last test
runs the command lines on the real synthetic anny data."""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pose2mesh.body_models import BodyOutput
from pose2mesh.config import load_config
from pose2mesh.engine import builders
from pose2mesh.engine.checkpoint import latest_checkpoint, load_checkpoint
from pose2mesh.engine.distributed import DistContext, parse_gpu_ids, resolve_device, wrap_model
from pose2mesh.engine.experiment import ExperimentDirs, create_experiment, latest_experiment_with_checkpoint
from pose2mesh.engine.logging import close_logger, setup_logger
from pose2mesh.engine.trainer import Trainer
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import get_joint_set

REPO = Path(__file__).resolve().parents[1]
JOINTS = get_joint_set("human36")
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- stand-ins
ICOSAHEDRON_FACES = (
    (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6),
    (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10),
    (8, 6, 7), (9, 8, 1),
)


def icosahedron_vertices() -> torch.Tensor:
    """(12, 3) unit icosahedron, vertex order matching ICOSAHEDRON_FACES."""
    phi = (1 + math.sqrt(5)) / 2
    raw = [(-1, phi, 0), (1, phi, 0), (-1, -phi, 0), (1, -phi, 0), (0, -1, phi), (0, 1, phi),
           (0, -1, -phi), (0, 1, -phi), (phi, 0, -1), (phi, 0, 1), (-phi, 0, -1), (-phi, 0, 1)]
    verts = torch.tensor(raw, dtype=torch.float32)
    return verts / verts.norm(dim=1, keepdim=True)


class TinyBodyModel(torch.nn.Module):
    """BodyModel contract on an elongated icosahedron (12 vertices): ``shape`` (B,3)
    stretches the axes, ``bend`` (B,2) bends and twists it along its height; metres, z up."""

    name = "tiny"

    def __init__(self):
        super().__init__()
        rest = icosahedron_vertices() * torch.tensor([0.25, 0.15, 0.9])
        self.register_buffer("rest_vertices_m", rest)
        self.register_buffer("faces", torch.tensor(ICOSAHEDRON_FACES, dtype=torch.int64))
        self.num_vertices = rest.shape[0]
        self.param_shapes = {"shape": (3,), "bend": (2,)}
        weights = torch.rand(JOINTS.num_joints, self.num_vertices, generator=torch.Generator().manual_seed(0)) ** 8
        self.register_buffer("_human36", weights / weights.sum(1, keepdim=True))

    def zero_params(self, batch_size: int, device=None) -> dict[str, torch.Tensor]:
        return {k: torch.zeros(batch_size, *s, device=device) for k, s in self.param_shapes.items()}

    def forward(self, shape: torch.Tensor, bend: torch.Tensor) -> BodyOutput:
        """(B, 12, 3) vertices; its "skeleton" joints are the human36 joints regressed from them."""
        verts = self.rest_vertices_m * (1 + 0.3 * shape[:, None, :])
        x, y, z = verts.unbind(-1)
        bend_rad, twist_rad = bend[:, :1] * z, bend[:, 1:] * z
        y, z = y * torch.cos(bend_rad) - z * torch.sin(bend_rad), y * torch.sin(bend_rad) + z * torch.cos(bend_rad)
        x, y = x * torch.cos(twist_rad) - y * torch.sin(twist_rad), x * torch.sin(twist_rad) + y * torch.cos(twist_rad)
        verts = torch.stack([x, y, z], dim=-1)
        return BodyOutput(vertices_m=verts, joints_m=self.regress_joints(verts, "human36"))

    def joint_regressor(self, joint_set_name: str) -> torch.Tensor:
        if joint_set_name != "human36":
            raise Pose2MeshError(f"tiny body model has no regressor for '{joint_set_name}'")
        return self._human36

    def regress_joints(self, vertices: torch.Tensor, joint_set_name: str) -> torch.Tensor:
        return torch.einsum("jv,bvc->bjc", self.joint_regressor(joint_set_name).to(vertices), vertices)


class TinyDataset(torch.utils.data.Dataset):
    """Dataset contract: items are body-model parameters and a camera yaw, deterministic
    per (seed, epoch, index); ``prepare_batch`` builds meshes, joints and the 2D input in
    batch and (training split) adds 2D jitter from the global torch RNG."""

    name = "Tiny"
    body_model_name = "tiny"
    joint_set = JOINTS
    target_joint_set = JOINTS

    def __init__(self, split: str, size: int, model_name: str, seed: int = 0):
        self.split, self.size, self.model_name, self.seed = split, size, model_name, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        if self.split == "train":
            self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        key = (self.seed, self.epoch, index) if self.split == "train" else (10_000 + self.seed, index)
        rng = np.random.default_rng(key)
        return {
            "shape": rng.uniform(-1, 1, 3).astype(np.float32),
            "bend": rng.uniform(-0.6, 0.6, 2).astype(np.float32),
            "yaw": rng.uniform(-math.pi, math.pi, 1).astype(np.float32),
        }

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, torch.Tensor], body_model) -> dict[str, torch.Tensor]:
        verts = body_model(shape=batch["shape"], bend=batch["bend"]).vertices_m
        cos, sin = torch.cos(batch["yaw"])[:, :, None], torch.sin(batch["yaw"])[:, :, None]
        x, y, z = verts.unbind(-1)
        verts_cam = torch.stack([x * cos[..., 0] - y * sin[..., 0], -z, x * sin[..., 0] + y * cos[..., 0]], -1)
        joints = body_model.regress_joints(verts_cam, "human36")
        uv = joints[..., :2] / (joints[..., 2:] + 4.0)
        pose2d = (uv - uv.mean(1, keepdim=True)) / uv.std(1, keepdim=True)
        if self.split == "train":
            pose2d = pose2d + 0.01 * torch.randn_like(pose2d)
        root = joints[:, JOINTS.root]
        lift_mm = (joints - root[:, None]) * 1000.0
        out = {
            "pose2d": pose2d,
            "lift_pose3d_mm": lift_mm,
            "lift_pose3d_valid": torch.ones_like(lift_mm[..., :1]),
            "reg_pose3d_mm": lift_mm.clone(),
            "reg_pose3d_valid": torch.ones_like(lift_mm[..., :1]),
        }
        if self.model_name != "posenet":
            out["mesh_m"] = verts_cam - root[:, None]
            out["mesh_valid"] = torch.ones_like(lift_mm[:, :1, :1])
        return out

    @torch.no_grad()
    def evaluate_batch(self, outputs, batch, body_model) -> dict[str, torch.Tensor]:
        def errors(pred, gt):
            centred = (pred - pred.mean(1, keepdim=True)) - (gt - gt.mean(1, keepdim=True))
            return (pred - gt).norm(dim=-1).mean(1), centred.norm(dim=-1).mean(1)

        pred = outputs["pose3d_mm"] - outputs["pose3d_mm"][:, :1]
        result = dict(zip(("MPJPE", "PA-MPJPE"), errors(pred, batch["lift_pose3d_mm"])))
        if "mesh_m" in outputs:
            result.update(zip(("MPVPE", "PA-MPVPE"), errors(outputs["mesh_m"] * 1000, batch["mesh_m"] * 1000)))
        return result

    def summarize(self, per_sample: dict[str, np.ndarray]) -> dict[str, float]:
        return {key: float(np.mean(values)) for key, values in per_sample.items()}


class TinyNet(torch.nn.Module):
    """(B, J, 2) -> (B, J, 3) mm, or a dict with ``mesh_m`` (B, V, 3) too."""

    def __init__(self, num_vertices: int, with_mesh: bool, hidden: int = 64):
        super().__init__()
        self.trunk = torch.nn.Sequential(
            torch.nn.Linear(JOINTS.num_joints * 2, hidden), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(),
            torch.nn.Dropout(0.2), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        )
        self.pose_head = torch.nn.Linear(hidden, JOINTS.num_joints * 3)
        self.mesh_head = torch.nn.Linear(hidden, num_vertices * 3) if with_mesh else None

    def forward(self, pose2d: torch.Tensor):
        features = self.trunk(pose2d.flatten(1))
        pose3d_mm = self.pose_head(features).view(len(pose2d), -1, 3) * 300.0
        if self.mesh_head is None:
            return pose3d_mm
        return {"pose3d_mm": pose3d_mm, "mesh_m": self.mesh_head(features).view(len(pose2d), -1, 3) * 0.3}


def tiny_cfg(model_name: str = "pose2mesh_net", *opts):
    """A frozen config for the stand-ins (CPU, small batches); ``opts`` are KEY VALUE."""
    base = [
        "DEVICE", "cpu", "MODEL.name", model_name, "TRAIN.batch_size", "16", "TEST.batch_size", "24",
        "TRAIN.end_epoch", "2", "TRAIN.optimizer", "adam", "TRAIN.lr", "0.003", "DATASET.workers", "0",
        "TRAIN.print_freq", "2", "TRAIN.lr_step", "[3]",
    ]
    return load_config(None, base + [str(o) for o in opts])


def make_trainer(cfg, exp_dir: Path, *, gpu_ids=(), loss_fn=None, ctx: DistContext = DistContext(),
                 train_size: int = 64, test_size: int = 40) -> Trainer:
    """Everything :func:`pose2mesh.engine.trainer.run_training` does, with the stand-ins."""
    builders.seed_everything(int(cfg.SEED) + ctx.rank)
    body_model = TinyBodyModel()
    parts = builders.RunParts(
        body_model=body_model,
        model=TinyNet(body_model.num_vertices, with_mesh=cfg.MODEL.name != "posenet"),
        train_set=TinyDataset("train", train_size, cfg.MODEL.name, seed=int(cfg.SEED)),
        test_set=TinyDataset("test", test_size, cfg.MODEL.name),
    )
    exp = create_experiment(exp_dir.parent, exp_dir) if ctx.is_main else ExperimentDirs(exp_dir)
    setup_logger(exp.log_file, is_main=ctx.is_main)
    return Trainer(cfg, parts, device=CPU, ctx=ctx, exp=exp, gpu_ids=gpu_ids, loss_fn=loss_fn)


def fit(trainer: Trainer) -> dict[str, float]:
    try:
        return trainer.fit()
    finally:
        trainer.close()
        close_logger()


def assert_same_weights(state_a: dict, state_b: dict) -> None:
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


# ----------------------------------------------------------------------------- tests
def test_training_reduces_loss_and_writes_outputs(tmp_path):
    trainer = make_trainer(tiny_cfg("posenet", "TRAIN.end_epoch", 4), tmp_path / "exp")
    metrics = fit(trainer)
    totals = [entry["total"] for entry in trainer.train_history]
    assert totals[-1] < 0.7 * totals[0]
    assert set(metrics) == {"MPJPE", "PA-MPJPE"}

    exp = trainer.exp
    names = {p.name for p in exp.checkpoint.iterdir()}
    assert names == {"checkpoint1.pth.tar", "checkpoint2.pth.tar", "checkpoint3.pth.tar", "final.pth.tar",
                     "best.pth.tar"}
    final = load_checkpoint(exp.checkpoint / "final.pth.tar")
    assert final["epoch"] == 4 and len(final["train_log"]) == 4 and len(final["test_log"]["joint"]) == 4
    assert not any(k.startswith("module.") for k in final["model_state_dict"])
    result = json.loads((exp.result / "metrics.json").read_text())
    assert {"MPJPE", "PA-MPJPE", "baseline"} <= set(result) and "MPVPE" not in result
    assert set(result["baseline"]) == {"MPJPE", "PA-MPJPE"}
    assert all(value > 0 for value in result["baseline"].values())
    assert (exp.graph / "loss.png").stat().st_size > 0 and (exp.graph / "error.png").stat().st_size > 0
    assert list(exp.tb.glob("events.out.tfevents.*"))
    assert "epoch 4:" in exp.log_file.read_text()


def test_mean_baseline_estimate(tmp_path):
    trainer = make_trainer(tiny_cfg(), tmp_path / "exp")
    baseline = trainer.baseline()
    assert set(baseline) == {"MPJPE", "PA-MPJPE", "MPVPE", "PA-MPVPE"}
    loader = builders.build_baseline_loader(trainer.cfg, trainer.train_set, DistContext(), CPU)
    means = trainer.evaluator.estimate_mean_targets(trainer.train_set, loader)
    batches = [trainer.train_set.prepare_batch(b, trainer.body_model) for b in loader]
    expected = torch.cat([b["mesh_m"] for b in batches]).mean(0)
    torch.testing.assert_close(means["mesh_m"], expected)
    trainer.close()
    close_logger()


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_after_kill_gives_identical_weights(tmp_path, monkeypatch, workers):
    cfg = tiny_cfg("pose2mesh_net", "TRAIN.end_epoch", 4, "DATASET.workers", workers, "TRAIN.lr_step", "[2]")
    uninterrupted = make_trainer(cfg, tmp_path / "full")
    fit(uninterrupted)

    class Killed(Exception):
        pass

    end_epoch = Trainer._end_epoch

    def end_epoch_then_kill(self, epoch, *args):
        end_epoch(self, epoch, *args)
        if epoch == 2:
            raise Killed

    monkeypatch.setattr(Trainer, "_end_epoch", end_epoch_then_kill)
    with pytest.raises(Killed):
        fit(make_trainer(cfg, tmp_path / "killed"))
    monkeypatch.undo()

    torch.manual_seed(987)  # a new process: every RNG elsewhere
    np.random.seed(987)
    resumed = make_trainer(cfg, tmp_path / "killed")
    checkpoint = latest_checkpoint(resumed.exp.checkpoint)
    assert checkpoint.name == "checkpoint2.pth.tar"
    resumed.resume(checkpoint)
    fit(resumed)

    assert_same_weights(uninterrupted.raw_model.state_dict(), resumed.raw_model.state_dict())
    assert resumed.test_history == uninterrupted.test_history
    assert resumed.train_history == uninterrupted.train_history
    assert resumed.best_epoch == uninterrupted.best_epoch
    assert resumed.scheduler.state_dict() == uninterrupted.scheduler.state_dict()
    full = load_checkpoint(uninterrupted.exp.checkpoint / "final.pth.tar")
    again = load_checkpoint(resumed.exp.checkpoint / "final.pth.tar")
    assert_same_weights(full["model_state_dict"], again["model_state_dict"])
    assert full["optim_state_dict"]["state"].keys() == again["optim_state_dict"]["state"].keys()
    for key, state in full["optim_state_dict"]["state"].items():
        assert_same_weights(state, again["optim_state_dict"]["state"][key])


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tiny_cfg("pose2mesh_net", "TRAIN.end_epoch", 3)
    criterion = builders.build_loss_fn(cfg, TinyBodyModel(), CPU)

    def poisoned(outputs, batch, epoch):
        losses = criterion(outputs, batch, epoch)
        if epoch == 2:
            losses["total"] = losses["total"] * float("nan")
        return losses

    trainer = make_trainer(cfg, tmp_path / "exp", loss_fn=poisoned)
    with pytest.raises(Pose2MeshError, match=r"non-finite loss \(total=nan\) at epoch 2, iteration 0") as info:
        fit(trainer)
    message = str(info.value)
    assert "\n" not in message and "checkpoint1.pth.tar" in message
    assert {p.name for p in trainer.exp.checkpoint.iterdir()} == {"checkpoint1.pth.tar", "best.pth.tar"}
    kept = load_checkpoint(trainer.exp.checkpoint / "checkpoint1.pth.tar")
    assert kept["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in kept["model_state_dict"].values() if v.is_floating_point())


def test_plateau_scheduler_steps_with_the_test_error(tmp_path):
    cfg = tiny_cfg("posenet", "TRAIN.scheduler", "platue", "TRAIN.lr_factor", 0.5, "TRAIN.end_epoch", 1)
    trainer = make_trainer(cfg, tmp_path / "exp")
    fit(trainer)
    assert isinstance(trainer.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert trainer.scheduler.best == pytest.approx(trainer.test_history[-1]["MPJPE"])


def test_amp_bf16_on_cpu_trains(tmp_path):
    trainer = make_trainer(tiny_cfg("pose2mesh_net", "TRAIN.amp", True, "TRAIN.end_epoch", 1), tmp_path / "exp")
    metrics = fit(trainer)
    assert all(math.isfinite(v) for v in metrics.values())


def test_gpu_flag_handling():
    assert parse_gpu_ids("0,1") == [0, 1] and parse_gpu_ids("") == [] and parse_gpu_ids(None) == []
    for bad in ("a,b", "0,0", "-1"):
        with pytest.raises(Pose2MeshError, match="--gpu"):
            parse_gpu_ids(bad)
    if torch.cuda.is_available():
        pytest.skip("the CPU-only branches need a machine without CUDA")
    with pytest.raises(Pose2MeshError, match="--gpu 0,1 needs CUDA"):
        resolve_device("auto", [0, 1], DistContext())
    with pytest.raises(Pose2MeshError, match="DEVICE 'cuda'"):
        resolve_device("cuda", [], DistContext())
    assert resolve_device("cpu", [0, 1], DistContext()) == CPU
    assert resolve_device("auto", [], DistContext()) == CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="DataParallel on CPU needs a machine without CUDA")
def test_data_parallel_path_on_cpu(tmp_path):
    cfg = tiny_cfg("pose2mesh_net", "TRAIN.end_epoch", 1)
    wrapped = wrap_model(TinyNet(12, True), CPU, DistContext(), [0, 1])
    assert isinstance(wrapped, torch.nn.DataParallel)
    trainer = make_trainer(cfg, tmp_path / "exp", gpu_ids=[0, 1])
    assert isinstance(trainer.model, torch.nn.DataParallel)
    fit(trainer)
    state = load_checkpoint(trainer.exp.checkpoint / "final.pth.tar")["model_state_dict"]
    assert state.keys() == trainer.raw_model.state_dict().keys()


def test_experiment_folders_are_unique_and_never_reused(tmp_path):
    first = create_experiment(tmp_path)
    (first.root / "keep.txt").write_text("x")
    others = [create_experiment(tmp_path) for _ in range(5)]
    roots = {e.root for e in [first, *others]}
    assert len(roots) == 6 and (first.root / "keep.txt").exists()
    for exp in others:
        assert all((exp.root / sub).is_dir() for sub in ("checkpoint", "graph", "vis", "result", "tb"))
    with pytest.raises(Pose2MeshError, match="no experiment folder with a checkpoint"):
        latest_experiment_with_checkpoint(tmp_path)
    (first.checkpoint / "checkpoint1.pth.tar").write_bytes(b"")
    assert latest_experiment_with_checkpoint(tmp_path).root == first.root


def test_a_failed_run_removes_the_experiment_folder_it_created_and_nothing_else(tmp_path):
    """Runs that stop before any output (here: the SMPL file is missing) leave no empty
    exp_* folder; a user's --exp_dir stays, and so does a created folder holding output."""
    from pose2mesh.engine.evaluator import run_test
    from pose2mesh.engine.experiment import remove_unused_experiment
    from pose2mesh.engine.trainer import run_training

    out = tmp_path / "out"
    cfg = load_config(None, ["DEVICE", "cpu", "MODEL.body_model", "smpl", "SMPL_DIR", str(tmp_path / "no_smpl"),
                             "OUTPUT_ROOT", str(out), "DATASET.workers", "0"])
    with pytest.raises(Pose2MeshError, match="SMPL"):
        run_training(cfg)
    weights = tmp_path / "weights.pth.tar"
    weights.write_bytes(b"never loaded: the run stops before")
    with pytest.raises(Pose2MeshError, match="SMPL"):
        run_test(cfg, weights=str(weights))
    assert out.is_dir() and list(out.iterdir()) == []

    mine = tmp_path / "mine"
    with pytest.raises(Pose2MeshError, match="SMPL"):
        run_training(cfg, exp_dir=str(mine))
    assert (mine / "config.yaml").is_file() and (mine / "checkpoint").is_dir()

    with_output = create_experiment(out)
    (with_output.checkpoint / "checkpoint1.pth.tar").write_bytes(b"")
    stray = create_experiment(out)
    (stray.root / "notes.txt").write_text("someone's file")
    bare = create_experiment(out)
    (bare.root / "log.txt").write_text("started\n")
    assert with_output.created and not remove_unused_experiment(with_output)
    assert not remove_unused_experiment(stray)
    assert not remove_unused_experiment(ExperimentDirs(bare.root))  # not known to be this run's
    assert remove_unused_experiment(bare) and not bare.root.exists()
    assert sorted(out.iterdir()) == sorted([with_output.root, stray.root])


def run_cli(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main" / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_cli_unknown_config_key_is_one_line_exit_2(tmp_path):
    cfg_file = tmp_path / "tiny.yml"
    cfg_file.write_text("MODEL:\n  name: posenet\n")
    for script in ("train.py", "test.py"):
        result = run_cli(script, "--cfg", str(cfg_file), "TRAIN.no_such_key", "1", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == (
            "error: unknown config key 'TRAIN.no_such_key' in command-line overrides"
        )
    assert not (tmp_path / "experiment").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_gpu_without_cuda_is_one_line_exit_2(tmp_path):
    cfg_file = tmp_path / "tiny.yml"
    cfg_file.write_text("DEVICE: auto\n")
    result = run_cli("train.py", "--cfg", str(cfg_file), "--gpu", "0,1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --gpu 0,1 needs CUDA, which is not available here (drop --gpu, or set DEVICE cpu)"
    ]


def test_evaluator_writes_vis_samples(tmp_path, monkeypatch):
    import pose2mesh.vis

    def fake_render(vertices_list, faces, focal, princpt, image, colors=None):
        """pose2mesh.vis has its own rendering tests; skip the 2-6 s renderer start here."""
        (vertices,) = vertices_list
        assert vertices.shape == (12, 3) and vertices[:, 2].min() > 0 and len(colors) == 1
        return np.full((*image, 3), 255, np.uint8), "stub"

    monkeypatch.setattr(pose2mesh.vis, "render_meshes", fake_render)
    trainer = make_trainer(tiny_cfg(), tmp_path / "exp")
    metrics = trainer.evaluator.evaluate(trainer.raw_model, vis_dir=trainer.exp.vis)
    assert set(metrics) == {"MPJPE", "PA-MPJPE", "MPVPE", "PA-MPVPE"}
    objs = sorted(p.name for p in trainer.exp.vis.glob("*.obj"))
    assert objs == [f"sample{i}_{kind}.obj" for i in range(4) for kind in ("gt", "pred")]
    text = (trainer.exp.vis / "sample0_pred.obj").read_text()
    assert text.count("\nf ") + text.startswith("f ") == 20 and text.count("v ") == 12
    assert sorted(p.name for p in trainer.exp.vis.glob("*.png")) == [f"sample{i}.png" for i in range(4)]
    assert (trainer.exp.vis / "sample0.png").stat().st_size > 0
    trainer.close()
    close_logger()


def load_script(name: str):
    """main/<name>.py as a module (to call its ``main(argv)`` in this process)."""
    spec = importlib.util.spec_from_file_location(f"main_{name}", REPO / "main" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_debug_train_resume_and_test_on_synthetic(tmp_path, monkeypatch, anny_body):
    """main/train.py --debug on the embedded synthetic set (a subprocess), then
    --resume_training to one more epoch and main/test.py on the result (in this process,
    to save start-up time). A small PoseNet keeps it short."""
    train_cfg = REPO / "asset" / "yaml" / "posenet_human36J_train_synthetic.yml"
    test_cfg = REPO / "asset" / "yaml" / "posenet_human36J_test_synthetic.yml"
    small = ["MODEL.posenet_hidden", "128", "DATASET.debug_max_samples", "32"]
    run = tmp_path / "run"
    result = run_cli("train.py", "--cfg", str(train_cfg), "--debug", "--exp_dir", str(run), *small, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p.name for p in (run / "checkpoint").iterdir()} == {"checkpoint1.pth.tar", "final.pth.tar", "best.pth.tar"}
    metrics = json.loads((run / "result" / "metrics.json").read_text())
    assert {"MPJPE", "PA-MPJPE", "baseline"} <= set(metrics) and "MPVPE" not in metrics

    monkeypatch.chdir(tmp_path)
    load_script("train").main(["--cfg", str(train_cfg), "--debug", "--resume_training", "--exp_dir", str(run),
                               *small, "TRAIN.end_epoch", "3"])
    assert load_checkpoint(run / "checkpoint" / "final.pth.tar")["epoch"] == 3
    assert "resumed from" in (run / "log.txt").read_text()
    last = json.loads((run / "result" / "metrics.json").read_text())

    load_script("test").main(["--cfg", str(test_cfg), "--weights", str(run), "--exp_dir", str(tmp_path / "test"),
                              *small])
    tested = json.loads((tmp_path / "test" / "result" / "metrics.json").read_text())
    assert tested["epoch"] == 3 and tested["baseline"] == pytest.approx(metrics["baseline"])
    assert tested["MPJPE"] == pytest.approx(last["MPJPE"])


def test_posenet_learns_held_out_synthetic_hands(tmp_path, monkeypatch, anny_hand):
    """A real (narrow) PoseNet trained for a few thousand synthetic hand samples must lift the
    disjoint test split far better than the training-set mean pose; a model that does not
    learn stays near ratio 1."""
    cfg = REPO / "asset" / "yaml" / "posenet_manoJ_train_synthetic_hand.yml"
    monkeypatch.chdir(tmp_path)
    load_script("train").main([
        "--cfg", str(cfg), "--exp_dir", str(tmp_path / "run"), "MODEL.posenet_hidden", "512",
        "SYNTHETIC.train_size", "8192", "SYNTHETIC.test_size", "512", "TRAIN.end_epoch", "4",
        "TRAIN.lr_step", "[3]", "DATASET.workers", "0",
    ])
    metrics = json.loads((tmp_path / "run" / "result" / "metrics.json").read_text())
    assert metrics["MPJPE"] < 0.6 * metrics["baseline"]["MPJPE"], metrics
    assert metrics["PA-MPJPE"] < 0.6 * metrics["baseline"]["PA-MPJPE"], metrics


def test_two_runs_cannot_share_an_experiment_folder(tmp_path):
    """Concurrency promise: a second training run on a folder held by a live run stops with
    one line naming the holder; once the holder dies (even by kill -9) the folder is free."""
    import subprocess
    import sys
    import textwrap

    from pose2mesh.engine.experiment import lock_experiment

    folder = tmp_path / "exp"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pose2mesh.engine.experiment import lock_experiment
        lock_experiment({str(folder)!r})
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(Pose2MeshError, match=rf"in use by another run \(pid {holder.pid} on "):
            lock_experiment(folder)
        done = subprocess.run([sys.executable, "main/train.py", "--cfg", "asset/yaml/posenet_human36J_train_synthetic.yml",
                               "--exp_dir", str(folder), "--debug"], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 2 and f"pid {holder.pid}" in done.stderr.strip().splitlines()[-1]
    finally:
        holder.kill()
        holder.wait()
    assert (folder / ".lock").exists()  # a stale file from a killed holder does not block
    lock_experiment(folder)


def test_weights_gone_non_finite_in_the_last_step_of_an_epoch_stop_before_evaluation(tmp_path):
    """One step per epoch and a step size that overflows the weights: the guard stops after
    that step (the loss was finite before it), before evaluation's SVD would crash."""
    cfg = tiny_cfg("pose2mesh_net", "TRAIN.end_epoch", 1, "TRAIN.optimizer", "rmsprop", "TRAIN.lr", 1e38)
    trainer = make_trainer(cfg, tmp_path / "exp", train_size=16)
    with pytest.raises(Pose2MeshError, match=r"non-finite weights after the optimizer step at epoch 1, "
                                             r"iteration 0 .*last good checkpoint: none written yet"):
        fit(trainer)


def test_evaluation_refuses_non_finite_predictions(tmp_path):
    trainer = make_trainer(tiny_cfg("pose2mesh_net"), tmp_path / "exp")
    with torch.no_grad():
        next(trainer.raw_model.parameters()).fill_(float("nan"))
    with pytest.raises(Pose2MeshError, match=r"evaluation stopped: the model predicts non-finite values"):
        trainer.evaluate()


def test_resume_refuses_incompatible_changes_and_applies_a_new_learning_rate(tmp_path):
    cfg = tiny_cfg("pose2mesh_net", "TRAIN.end_epoch", 1)
    trainer = make_trainer(cfg, tmp_path / "exp")
    fit(trainer)
    checkpoint = trainer.exp.checkpoint / "final.pth.tar"
    other = make_trainer(tiny_cfg("pose2mesh_net", "TRAIN.end_epoch", 2, "TRAIN.optimizer", "rmsprop",
                                  "DATASET.input_joint_set", "human36"), tmp_path / "exp2")
    with pytest.raises(Pose2MeshError, match=r"trained with another DATASET.input_joint_set 'coco' -> "
                                             r"'human36', TRAIN.optimizer 'adam' -> 'rmsprop'; these cannot"):
        other.resume(checkpoint)
    faster = make_trainer(tiny_cfg("pose2mesh_net", "TRAIN.end_epoch", 2, "TRAIN.lr", 0.03), tmp_path / "exp3")
    faster.resume(checkpoint)
    assert faster.optimizer.param_groups[0]["lr"] == pytest.approx(0.03)
    log = (tmp_path / "exp3" / "log.txt").read_text()
    assert "resume: TRAIN.lr changed from 0.003 to 0.03 (accepted)" in log
