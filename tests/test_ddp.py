"""DistributedDataParallel on CPU: two gloo processes train one short epoch on the
stand-ins of test_engine.py through the same Trainer that main/train.py uses."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

from pose2mesh.engine import trainer as trainer_module
from pose2mesh.engine.distributed import DistContext, init_distributed, shutdown_distributed
from pose2mesh.engine.evaluator import Evaluator
from pose2mesh.engine.builders import build_test_loader
from pose2mesh.engine.checkpoint import load_checkpoint, load_model_weights
from pose2mesh.engine.experiment import prepare_experiment
from test_engine import CPU, REPO, TinyBodyModel, TinyDataset, TinyNet, fit, make_trainer, tiny_cfg

WORLD_SIZE = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ddp_worker(rank: int, port: int, output_root: str, report_dir: str) -> None:
    """One torchrun-like process: env rendezvous, shared experiment folder, one epoch."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    report = Path(report_dir)
    save = trainer_module.save_checkpoint

    def recording_save(state, directory, **kwargs):
        with open(report / f"saves_rank{rank}.txt", "a") as handle:
            handle.write(f"{state['epoch']}\n")
        return save(state, directory, **kwargs)

    trainer_module.save_checkpoint = recording_save
    ctx = init_distributed("cpu")
    try:
        exp, _ = prepare_experiment(output_root, ctx)
        trainer = make_trainer(tiny_cfg("pose2mesh_net", "TRAIN.end_epoch", 1), exp.root, ctx=ctx)
        assert isinstance(trainer.model, torch.nn.parallel.DistributedDataParallel)
        trainer.train_loader.sampler.set_epoch(1)
        seen = list(trainer.train_loader.sampler)
        metrics = fit(trainer)
        torch.save({"state": trainer.raw_model.state_dict(), "metrics": metrics, "seen": seen,
                    "losses": trainer.train_history, "ctx": (ctx.rank, ctx.world_size)},
                   report / f"rank{rank}.pt")
    finally:
        shutdown_distributed()


def test_ddp_two_cpu_processes(tmp_path):
    output_root, report = tmp_path / "experiment", tmp_path / "report"
    report.mkdir()
    mp.spawn(ddp_worker, args=(free_port(), str(output_root), str(report)), nprocs=WORLD_SIZE, join=True)

    results = [torch.load(report / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]
    assert [r["ctx"] for r in results] == [(0, 2), (1, 2)]
    for key, value in results[0]["state"].items():
        assert torch.equal(value, results[1]["state"][key]), key
    assert results[0]["metrics"] == results[1]["metrics"] and results[0]["losses"] == results[1]["losses"]
    assert set(results[0]["seen"]).isdisjoint(results[1]["seen"])
    assert len(results[0]["seen"]) == len(results[1]["seen"]) == 32

    # Only rank 0 wrote: one experiment folder, its checkpoints, one event file, one log.
    assert (report / "saves_rank0.txt").read_text() == "1\n" and not (report / "saves_rank1.txt").exists()
    (exp_root,) = output_root.iterdir()
    assert sorted(p.name for p in (exp_root / "checkpoint").iterdir()) == ["best.pth.tar", "final.pth.tar"]
    assert len(list((exp_root / "tb").iterdir())) == 1
    assert (exp_root / "result" / "metrics.json").is_file()

    # The gathered DDP metrics equal a single-process evaluation of the final weights.
    body_model, model = TinyBodyModel(), TinyNet(12, True)
    load_model_weights(model, exp_root / "checkpoint" / "final.pth.tar")
    cfg = tiny_cfg("pose2mesh_net")
    test_set = TinyDataset("test", 40, "pose2mesh_net")
    evaluator = Evaluator(test_set, build_test_loader(cfg, test_set, DistContext(), CPU), body_model,
                          device=CPU, ctx=DistContext())
    single = evaluator.evaluate(model)
    assert single.keys() == results[0]["metrics"].keys()
    for key, value in single.items():
        assert abs(value - results[0]["metrics"][key]) < 1e-3 * max(1.0, abs(value)), key


def test_torchrun_main_train_two_cpu_processes(tmp_path, anny_body):
    """The real command line under torchrun: DDP over gloo, rank 0 writes, all ranks'
    RNG states end up in the checkpoint."""
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD_SIZE),
        str(REPO / "main" / "train.py"), "--cfg", str(REPO / "asset" / "yaml" / "posenet_human36J_train_synthetic.yml"),
        "--debug", "--exp_dir", str(run), "DEVICE", "cpu", "MODEL.posenet_hidden", "128", "DATASET.debug_max_samples", "32",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    final = load_checkpoint(run / "checkpoint" / "final.pth.tar")
    assert final["world_size"] == WORLD_SIZE and len(final["rng_states"]) == WORLD_SIZE
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == [
        "best.pth.tar", "checkpoint1.pth.tar", "final.pth.tar"]
    assert len(list((run / "tb").iterdir())) == 1 and (run / "result" / "metrics.json").is_file()
    assert [d.name for d in tmp_path.iterdir() if d.name != "run"] == []
