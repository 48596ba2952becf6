"""Speed and memory of pose2mesh: training, inference, data pipeline and graph build.

    python tools/benchmark.py                                   # CPU, batch 64, 6,890-vertex anny
    python tools/benchmark.py --topology default                # the full 13,718-vertex anny body
    python tools/benchmark.py --device cuda --amp --compile     # on a GPU
    python tools/benchmark.py --quick                           # seconds-long smoke run (CI)
    python tools/benchmark.py --cfg asset/yaml/pose2mesh_manoJ_train_synthetic_hand.yml --topology default

Every measurement runs in its own fresh process (so each peak RSS belongs to that phase
alone) on synthetic anny data, with the shipped synthetic configs and the same builders the
trainer uses:

* ``graph``: mesh hierarchy build time (no cache) and cache load time;
* ``gemm``: dense matrix-product GFLOPS at MeshNet's level-0 (128 x 128) and level-3
  (256 x 256) shapes, the compute ceiling of the graph convolutions, and the time to
  allocate and fill one fresh level-0 activation (first-touch page faults; compare with
  ``THP_MEM_ALLOC_ENABLE=0``);
* ``data``: synthetic training samples/s through the DataLoader, including the batched
  body-model forward and target building on the device (``prepare_batch``);
* ``posenet_train`` / ``pose2mesh_train``: samples/s of full training steps (forward, loss,
  backward, optimizer step) on a prepared batch;
* ``pose2mesh_infer``: samples/s at ``--batch``, eval mode, no gradients;
* ``pose2mesh_latency``: median latency at batch 1 (eval, no gradients) in a process that
  serves only batch-1 requests, as a latency-bound service would;
* ``lifters``: each lifter alone (PoseNet at the config's width and at 1,024, HGN): training
  samples/s, parameters and batch-1 latency, for the README's lifter comparison.

The inference phases keep freed CPU memory for reuse, as ``main/test.py`` does
(``pose2mesh.engine.cpu_memory``); ``--no-memory-reuse`` turns that off for an A/B.
Results are printed as a table and written as JSON (``--out``). Timings are medians over the
timed repetitions after warm-up steps; the data, training and inference phases also report
the page faults and the kernel (system) CPU time per step, averaged over those repetitions.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = "decimated6890"
DEFAULT_CFG = REPO_ROOT / "asset/yaml/pose2mesh_human36J_train_synthetic.yml"
HGN_CFG = REPO_ROOT / "asset/yaml/HGN_human36J_train_synthetic.yml"
PHASES = ("graph", "gemm", "data", "posenet_train", "pose2mesh_train", "pose2mesh_infer",
          "pose2mesh_latency", "lifters")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", type=Path, default=DEFAULT_CFG,
                        help="a pose2mesh_*_train_synthetic*.yml config (default: human36 joints); "
                             "its posenet_* twin is used for the PoseNet phase")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default: 64)")
    parser.add_argument("--topology", default=DEFAULT_TOPOLOGY,
                        help="anny body topology: decimated6890 (SMPL's vertex count, default), "
                             "default (13,718 vertices), notoes, notoes_collapse10pc, decimated<N>")
    parser.add_argument("--amp", action="store_true", help="autocast (fp16 on CUDA, bf16 on CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")
    parser.add_argument("--steps", type=int, default=3, help="timed repetitions per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--no-memory-reuse", action="store_true",
                        help="inference phases allocate from fresh pages, as training does "
                             "(A/B of pose2mesh.engine.cpu_memory)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 4, one timed step, the 1,229-vertex body unless --topology")
    parser.add_argument("--out", default=str(REPO_ROOT / "experiment" / "benchmark.json"),
                        help="JSON output file")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.warmup = 4, 1, 1
        if args.topology == DEFAULT_TOPOLOGY:
            args.topology = "notoes_collapse10pc"
    if args.batch < 2:
        parser.error("--batch must be >= 2 (batch norm trains on at least two samples)")
    args.posenet_cfg = args.cfg.with_name(args.cfg.name.replace("pose2mesh_", "posenet_", 1))
    for path in (args.cfg, args.posenet_cfg):
        if not path.is_file():
            parser.error(f"config not found: {path}")
    return args


# ----------------------------------------------------------------------------- helpers
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _kernel_thp_mode() -> str | None:
    """The kernel's transparent-huge-page mode (``always``/``madvise``/``never``), if any."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text.strip()


def machine_info(device: str) -> dict:
    import torch


    info = {
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "thp_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "kernel_thp": _kernel_thp_mode(),
        "gpu": None,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclasses.dataclass
class Timing:
    """Timed repetitions of one measurement: the median wall time, and the minor page faults
    and kernel (system) CPU seconds of this process per repetition, on average."""

    median_s: float
    page_faults: float
    kernel_s: float

    def kernel_costs(self) -> dict:
        """The per-step page-fault and kernel-time fields of a phase's result."""
        return {"page_faults_per_step": round(self.page_faults),
                "kernel_s_per_step": round(self.kernel_s, 3)}


def _timed(fn, device, steps: int, warmup: int) -> Timing:
    """``fn()`` run ``warmup`` times, then timed over ``steps`` runs."""
    for _ in range(warmup):
        fn()
    _synchronize(device)
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return Timing(statistics.median(times), (after.ru_minflt - before.ru_minflt) / steps,
                  (after.ru_stime - before.ru_stime) / steps)


def _config(path: Path, args, extra=()):
    from pose2mesh.config import load_config

    opts = ["MODEL.topology", args.topology, "MODEL.posenet_pretrained", "False",
            "TRAIN.batch_size", str(args.batch), "TRAIN.amp", str(args.amp),
            "TRAIN.compile", str(args.compile), "DATASET.workers", "0",
            "SYNTHETIC.train_size", str(max(args.batch * (args.steps + args.warmup), 256)),
            "SYNTHETIC.test_size", "64", *extra]
    return load_config(str(path), opts)


def _setup(args):
    """Device, thread count; returns the torch device."""
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("benchmark: --device cuda but CUDA is not available")
        torch.cuda.set_device(device)
        torch.cuda.reset_peak_memory_stats(device)
    return device


def _peak_memory(device) -> dict:
    import torch

    peak = {"peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}
    if device.type == "cuda":
        peak["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return peak


def _parts(cfg, device):
    """Body model, hierarchy-built network and training set, as the trainer builds them."""
    from pose2mesh.engine import builders

    body_model = builders.build_body_model(cfg, device)
    model = builders.build_network(cfg, builders.build_hierarchy(cfg, body_model)).to(device)
    train_set = builders.build_train_dataset(cfg, body_model)
    return body_model, model, train_set


def _prepared_batch(train_set, body_model, batch_size: int, device) -> dict:
    import torch

    from pose2mesh.engine.evaluator import move_to_device

    items = [train_set[i] for i in range(batch_size)]
    batch = torch.utils.data.default_collate(items)
    return train_set.prepare_batch(move_to_device(batch, device), body_model)


# ----------------------------------------------------------------------------- phases
def phase_graph(args) -> dict:
    from pose2mesh.engine import builders
    from pose2mesh.graph import build_mesh_hierarchy

    device = _setup(args)
    cfg = _config(args.cfg, args)
    body_model = builders.build_body_model(cfg, device)
    faces = body_model.faces.cpu().numpy()
    levels = builders.graph_levels(cfg)
    start = time.perf_counter()
    hierarchy = build_mesh_hierarchy(faces, body_model.num_vertices, levels)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as cache:
        build_mesh_hierarchy(faces, body_model.num_vertices, levels, cache_dir=cache)
        start = time.perf_counter()
        build_mesh_hierarchy(faces, body_model.num_vertices, levels, cache_dir=cache)
        load_s = time.perf_counter() - start
    sizes = [int(n) for n in hierarchy.sizes]
    return {"vertices": body_model.num_vertices, "level_sizes": sizes,
            "padding": round(sizes[0] / body_model.num_vertices, 4),
            "build_s": round(build_s, 4), "cache_load_s": round(load_s, 4),
            "levels": len(sizes), **_peak_memory(device)}


def phase_gemm(args) -> dict:
    import torch

    from pose2mesh.engine import builders

    device = _setup(args)
    cfg = _config(args.cfg, args)
    sizes = builders.build_hierarchy(cfg, builders.build_body_model(cfg, device)).sizes

    def gflops(rows: int, width: int) -> float:
        """(rows, width) @ (width, width) into a preallocated output."""
        features = torch.randn(rows, width, device=device)
        weight = torch.randn(width, width, device=device)
        out = torch.empty(rows, width, device=device)
        seconds = _timed(lambda: torch.mm(features, weight, out=out), device, args.steps,
                         args.warmup).median_s
        return round(2 * rows * width * width / seconds / 1e9, 1)

    result = {f"level{level}_{width}x{width}_gflops": gflops(int(sizes[level]) * args.batch, width)
              for level, width in ((0, 128), (min(3, len(sizes) - 1), 256))}
    rows = int(sizes[0]) * args.batch
    seconds = _timed(lambda: torch.empty(rows, 128, device=device).fill_(1.0), device, args.steps,
                     args.warmup).median_s
    result["alloc_fill_level0_mb"] = round(rows * 128 * 4 / 2**20, 1)
    result["alloc_fill_level0_ms"] = round(seconds * 1000, 2)
    return {**result, **_peak_memory(device)}


def phase_data(args) -> dict:
    import torch

    from pose2mesh.engine import builders
    from pose2mesh.engine.distributed import DistContext
    from pose2mesh.engine.evaluator import move_to_device

    device = _setup(args)
    cfg = _config(args.cfg, args)
    body_model = builders.build_body_model(cfg, device)
    train_set = builders.build_train_dataset(cfg, body_model)
    loader = builders.build_train_loader(cfg, train_set, DistContext(), device, int(cfg.SEED))
    builders.start_epoch(loader, train_set, 1, int(cfg.SEED), 0)
    batches = iter(loader)

    def step():
        batch = move_to_device(next(batches), device)
        with torch.no_grad():
            train_set.prepare_batch(batch, body_model)

    timing = _timed(step, device, args.steps, args.warmup)
    return {"samples_per_s": round(args.batch / timing.median_s, 1),
            "batch_s": round(timing.median_s, 4), **timing.kernel_costs(), **_peak_memory(device)}


def _train_phase(args, cfg_path: Path) -> dict:
    device = _setup(args)
    cfg = _config(cfg_path, args)
    return _train_timing(args, cfg, device, _parts(cfg, device))


def _train_timing(args, cfg, device, parts) -> dict:
    """Samples/s of full training steps of ``parts`` (body model, network, training set, as
    :func:`_parts` builds them for ``cfg``) on a prepared batch."""
    import torch

    from pose2mesh.engine import builders
    from pose2mesh.engine.evaluator import autocast_context
    from pose2mesh.models import count_parameters
    from pose2mesh.models.outputs import as_output_dict

    body_model, model, train_set = parts
    batch = _prepared_batch(train_set, body_model, args.batch, device)
    loss_fn = builders.build_loss_fn(cfg, body_model, device)
    optimizer = builders.build_optimizer(cfg, model.parameters())
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and device.type == "cuda")
    network = torch.compile(model) if args.compile else model
    network.train()

    def step():
        with autocast_context(device, args.amp):
            outputs = as_output_dict(network(batch["pose2d"]))
        outputs = {key: value.float() for key, value in outputs.items()}
        loss = loss_fn(outputs, batch, epoch=cfg.TRAIN.end_epoch)["total"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    timing = _timed(step, device, args.steps, args.warmup)
    return {"samples_per_s": round(args.batch / timing.median_s, 2),
            "step_s": round(timing.median_s, 3), "parameters": count_parameters(model),
            **timing.kernel_costs(), **_peak_memory(device)}


def phase_posenet_train(args) -> dict:
    return _train_phase(args, args.posenet_cfg)


def phase_pose2mesh_train(args) -> dict:
    return _train_phase(args, args.cfg)


def _eval_network(args):
    """(device, network in eval mode, a prepared batch of 2D poses) for the inference phases.

    On CPU the phase process keeps freed memory for reuse, as ``main/test.py`` does
    (:func:`pose2mesh.engine.cpu_memory.keep_freed_memory`), unless ``--no-memory-reuse``.
    """
    import torch

    from pose2mesh.engine.cpu_memory import keep_freed_memory

    device = _setup(args)
    if device.type == "cpu" and not args.no_memory_reuse:
        keep_freed_memory()
    cfg = _config(args.cfg, args)
    body_model, model, train_set = _parts(cfg, device)
    pose2d = _prepared_batch(train_set, body_model, args.batch, device)["pose2d"]
    network = torch.compile(model) if args.compile else model
    return device, network.eval(), pose2d


def _infer(network, inputs, device, amp: bool) -> None:
    import torch

    from pose2mesh.engine.evaluator import autocast_context

    with torch.no_grad(), autocast_context(device, amp):
        network(inputs)


def phase_pose2mesh_infer(args) -> dict:
    device, network, pose2d = _eval_network(args)
    timing = _timed(lambda: _infer(network, pose2d, device, args.amp), device, args.steps,
                    args.warmup)
    return {"samples_per_s": round(args.batch / timing.median_s, 2),
            "batch_s": round(timing.median_s, 3), **timing.kernel_costs(), **_peak_memory(device)}


def phase_pose2mesh_latency(args) -> dict:
    device, network, pose2d = _eval_network(args)
    return {"latency_b1_ms": _latency_b1_ms(args, network, pose2d, device), **_peak_memory(device)}


def _latency_b1_ms(args, network, pose2d, device) -> float:
    """Median batch-1 latency (ms) of ``network`` in eval mode on the first pose of ``pose2d``."""
    network.eval()
    single = pose2d[:1]
    seconds = _timed(lambda: _infer(network, single, device, args.amp), device,
                     max(5 * args.steps, 5), args.warmup + 2).median_s
    return round(seconds * 1000, 1)


def phase_lifters(args) -> dict:
    """Each lifter alone, for the input joints of ``--cfg``: PoseNet at its config's width and
    at the shipped models' 1,024, and HGN (HGN_human36J_train_synthetic.yml's network): training
    samples/s at ``--batch``, parameters and batch-1 latency. One process for all three."""
    from pose2mesh.config import load_config

    device = _setup(args)
    posenet = load_config(str(args.posenet_cfg))
    same_data = ["DATASET.input_joint_set", posenet.DATASET.input_joint_set,
                 "DATASET.target_joint_set", posenet.DATASET.target_joint_set,
                 "MODEL.body_model", posenet.MODEL.body_model]
    lifters = {"posenet": (args.posenet_cfg, []),
               "posenet1024": (args.posenet_cfg, ["MODEL.posenet_hidden", "1024"]),
               "hgn": (HGN_CFG, same_data)}
    results = {}
    for name, (path, extra) in lifters.items():
        cfg = _config(path, args, extra)
        body_model, model, train_set = parts = _parts(cfg, device)
        timing = _train_timing(args, cfg, device, parts)
        pose2d = _prepared_batch(train_set, body_model, args.batch, device)["pose2d"]
        results[name] = {"train_samples_per_s": timing["samples_per_s"], "parameters": timing["parameters"],
                         "latency_b1_ms": _latency_b1_ms(args, model, pose2d, device)}
    return {f"{name}_{key}": value for name, result in results.items() for key, value in result.items()}


def _run_phase(name: str, args, queue) -> None:
    try:
        queue.put((name, globals()[f"phase_{name}"](args)))
    except BaseException as err:  # reported by the parent, the other phases still run
        queue.put((name, {"error": f"{type(err).__name__}: {err}"}))


def run_isolated(name: str, args) -> dict:
    """Run one phase in a fresh (spawned) process and return its result dict."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run_phase, args=(name, args, queue))
    process.start()
    try:
        _, result = queue.get()
    finally:
        process.join()
    if process.exitcode not in (0, None) and "error" not in result:
        result = {"error": f"process exited with code {process.exitcode}"}
    return result


# ----------------------------------------------------------------------------- report
def format_report(report: dict) -> str:
    machine, settings, results = report["machine"], report["settings"], report["results"]
    lines = [
        f"machine: {machine['cpu']} ({machine['cpu_cores']} cores, {machine['torch_threads']} torch "
        f"threads), torch {machine['torch']}, GPU: {machine['gpu'] or 'none'}, huge-page "
        f"allocations: THP_MEM_ALLOC_ENABLE={machine['thp_alloc']} (kernel: {machine['kernel_thp']})",
        "settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()),
    ]
    for name, result in results.items():
        text = ", ".join(f"{k}={v}" for k, v in result.items())
        lines.append(f"{name:>17}: {text}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from pose2mesh.engine.cpu_memory import enable_huge_page_allocations

    enable_huge_page_allocations()  # inherited by the phase processes; =0 opts out
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    report = {
        "machine": machine_info(args.device),
        "settings": {"cfg": args.cfg.name, "device": args.device, "batch": args.batch, "topology": args.topology,
                     "amp": args.amp, "compile": args.compile, "steps": args.steps,
                     "warmup": args.warmup, "quick": args.quick,
                     "memory_reuse": not args.no_memory_reuse},
        "results": {},
    }
    for name in args.phases:
        print(f"benchmark: {name} ...", flush=True)
        report["results"][name] = run_isolated(name, args)
    print(format_report(report))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    failed = [name for name, result in report["results"].items() if "error" in result]
    if failed:
        print(f"benchmark: failed phases: {failed}", file=sys.stderr)
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
