"""Evaluation: the model and a mean-pose/mean-mesh baseline over the test set.

Per batch the dataset's ``evaluate_batch`` gives per-sample errors (mm); under DDP every
rank evaluates an unpadded shard and the per-sample errors are gathered and put back in
dataset order before ``summarize``, so the numbers equal a single-process run's.

The baseline predicts, for every test sample, the training-set mean of ``lift_pose3d_mm``
(root-relative input joints) and of ``mesh_m`` (root-relative mesh), estimated over a
fixed subset of training samples, and is scored with the same ``evaluate_batch``.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pose2mesh.engine import builders
from pose2mesh.engine.checkpoint import (
    latest_checkpoint,
    load_model_weights,
    preserved_rng_state,
)
from pose2mesh.engine.cpu_memory import keep_freed_memory
from pose2mesh.engine.distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    init_distributed,
    parse_gpu_ids,
    resolve_device,
    shutdown_distributed,
    wrap_model,
)
from pose2mesh.engine.experiment import prepare_experiment, remove_unused_experiment
from pose2mesh.engine.logging import close_logger, get_logger, setup_logger
from pose2mesh.errors import Pose2MeshError
from pose2mesh.models.outputs import as_output_dict

REPORTED_METRICS = ("MPJPE", "PA-MPJPE", "MPVPE", "PA-MPVPE")
NUM_VIS_SAMPLES = 4
VIS_IMAGE_PX = 384
VIS_FOCAL_PX = 1000.0
GT_COLOR, PRED_COLOR = (190, 190, 190), (110, 160, 230)


def move_to_device(batch: Mapping, device: torch.device) -> dict:
    """Tensors of a collated batch on ``device`` (other values unchanged)."""
    non_blocking = device.type == "cuda"
    return {key: value.to(device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}


def autocast_context(device: torch.device, enabled: bool):
    """bf16 autocast on CPU, fp16 on CUDA; a no-op context when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


class Evaluator:
    """Scores a model (and the mean baseline) on one test dataset.

    Args:
        dataset: the test Pose2MeshDataset.
        loader: its loader (this rank's shard, in order).
        body_model: the experiment's BodyModel (for ``prepare_batch`` / ``evaluate_batch``).
        amp: run the model under autocast (bf16 on CPU, fp16 on CUDA).
    """

    def __init__(self, dataset, loader, body_model, *, device: torch.device, ctx: DistContext, amp: bool = False):
        self.dataset = dataset
        self.loader = loader
        self.body_model = body_model
        self.device = device
        self.ctx = ctx
        self.amp = amp

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, vis_dir: Path | None = None,
                 result_dir: Path | None = None) -> dict[str, float]:
        """Summary metrics (mm) of ``model`` over the whole test set (same on every rank).
        With ``vis_dir``, rank 0 also writes OBJ files and images of the first test samples.
        With ``result_dir``, a dataset that exports its predictions (FreiHAND's
        ``pred.json``) writes them there, gathered from every rank."""
        model.eval()
        with preserved_rng_state():
            per_sample = self._run(lambda batch: self._predict(model, batch), "test", vis_dir)
        if result_dir is not None and hasattr(self.dataset, "export_predictions"):
            states = all_gather_objects(self.dataset.prediction_state(), self.ctx)
            if self.ctx.is_main:
                self.dataset.export_predictions(result_dir, states)
        return self.dataset.summarize(per_sample)

    def _predict(self, model, batch) -> dict[str, torch.Tensor]:
        with autocast_context(self.device, self.amp):
            outputs = as_output_dict(model(batch["pose2d"]))
        return {key: value.float() for key, value in outputs.items()}

    def _run(self, predict, desc: str, vis_dir: Path | None = None) -> dict[str, np.ndarray]:
        chunks: dict[str, list[np.ndarray]] = {}
        bar = tqdm(self.loader, desc=desc, disable=not self.ctx.is_main, dynamic_ncols=True, leave=False)
        for batch in bar:
            batch = self.dataset.prepare_batch(move_to_device(batch, self.device), self.body_model)
            outputs = predict(batch)
            bad = [key for key, value in outputs.items() if not torch.isfinite(value).all()]
            if bad:
                raise Pose2MeshError(
                    f"evaluation stopped: the model predicts non-finite values ({', '.join(bad)}) "
                    f"on {self.dataset.name} {desc}; its weights are not usable")
            errors = self.dataset.evaluate_batch(outputs, batch, self.body_model)
            for key, value in errors.items():
                chunks.setdefault(key, []).append(value.detach().float().cpu().numpy())
            if vis_dir is not None and self.ctx.is_main:
                write_vis_samples(vis_dir, outputs, batch, self.body_model)
                vis_dir = None
        bar.close()
        local = {key: np.concatenate(values) for key, values in chunks.items()}
        indices = np.fromiter(iter(self.loader.sampler), dtype=np.int64)
        return _gather_in_dataset_order(local, indices, self.ctx)

    @torch.no_grad()
    def estimate_mean_targets(self, train_set, loader) -> dict[str, torch.Tensor]:
        """Valid-masked means over ``loader`` (all ranks): ``pose3d_mm`` (J, 3) of
        ``lift_pose3d_mm`` and, for mesh models, ``mesh_m`` (V, 3)."""
        sums: dict[str, torch.Tensor] = {}
        pairs = {"pose3d_mm": ("lift_pose3d_mm", "lift_pose3d_valid"), "mesh_m": ("mesh_m", "mesh_valid")}
        for batch in tqdm(loader, desc="baseline", disable=not self.ctx.is_main, dynamic_ncols=True, leave=False):
            batch = train_set.prepare_batch(move_to_device(batch, self.device), self.body_model)
            for name, (key, valid_key) in pairs.items():
                if key not in batch:
                    continue
                valid = batch[valid_key].expand_as(batch[key][..., :1]).float()
                total = torch.cat([(batch[key] * valid).sum(0), valid.sum(0)], dim=-1)
                sums[name] = sums[name] + total if name in sums else total
        if not sums:
            raise Pose2MeshError(f"cannot estimate the mean pose: the training set '{train_set.name}' gave no batch")
        means = {}
        for name, total in sums.items():
            total = all_reduce_sum(total, self.ctx)
            means[name] = total[..., :-1] / total[..., -1:].clamp(min=1.0)
        return means

    def evaluate_mean_baseline(self, train_set, loader) -> dict[str, float]:
        """Summary metrics (mm) of always predicting the training-set mean pose and mesh.

        The training set is put at epoch 0 first, so that training and main/test.py see the
        same samples (a Trainer reseeds it at the start of every epoch anyway)."""
        train_set.set_epoch(0)
        with preserved_rng_state():
            means = self.estimate_mean_targets(train_set, loader)

            def predict(batch):
                size = batch["pose2d"].shape[0]
                return {name: mean.expand(size, *mean.shape) for name, mean in means.items()}

            with torch.no_grad():
                per_sample = self._run(predict, "baseline test")
        return self.dataset.summarize(per_sample)


def _gather_in_dataset_order(local: dict[str, np.ndarray], indices: np.ndarray, ctx: DistContext) -> dict[str, np.ndarray]:
    if not ctx.is_distributed:
        return local
    gathered = all_gather_objects((indices, local), ctx)
    order = np.argsort(np.concatenate([idx for idx, _ in gathered]), kind="stable")
    return {key: np.concatenate([part[key] for _, part in gathered])[order] for key in local}


# ----------------------------------------------------------------------------- outputs
def write_vis_samples(vis_dir: Path, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                      body_model, count: int = NUM_VIS_SAMPLES) -> None:
    """For the first ``count`` samples: ``sample{i}_pred.obj`` / ``sample{i}_gt.obj``
    (metres, camera frame, root-relative) and ``sample{i}.png`` (ground truth | prediction,
    rendered headless by :func:`pose2mesh.vis.render_meshes`). Mesh models only."""
    if "mesh_m" not in outputs or "mesh_m" not in batch:
        return
    from pose2mesh.vis import render_meshes, save_obj, write_image

    faces = body_model.faces.detach().cpu().numpy()
    vis_dir = Path(vis_dir)
    for i in range(min(count, outputs["mesh_m"].shape[0])):
        pred_m = outputs["mesh_m"][i].detach().float().cpu().numpy()
        gt_m = batch["mesh_m"][i].detach().float().cpu().numpy()
        save_obj(vis_dir / f"sample{i}_pred.obj", pred_m, faces)
        save_obj(vis_dir / f"sample{i}_gt.obj", gt_m, faces)
        # A virtual camera in front of the ground truth that frames it in 80% of the image.
        centre_m = gt_m.mean(0)
        extent_m = max(float(np.ptp(gt_m[:, :2], axis=0).max()), 1e-3)
        distance_m = VIS_FOCAL_PX * extent_m / (0.8 * VIS_IMAGE_PX)
        panels = [
            render_meshes([mesh - centre_m + np.array([0.0, 0.0, distance_m])], faces, VIS_FOCAL_PX,
                          (VIS_IMAGE_PX / 2, VIS_IMAGE_PX / 2), (VIS_IMAGE_PX, VIS_IMAGE_PX), colors=[color])[0]
            for mesh, color in ((gt_m, GT_COLOR), (pred_m, PRED_COLOR))
        ]
        write_image(vis_dir / f"sample{i}.png", np.concatenate(panels, axis=1))


def format_metrics_table(metrics: Mapping[str, float], baseline: Mapping[str, float] | None = None) -> str:
    """A text table: one row per metric (mm), the model and the mean baseline side by side."""
    names = [n for n in REPORTED_METRICS if n in metrics] + sorted(set(metrics) - set(REPORTED_METRICS))
    width = max(len(n) for n in names + ["metric"])
    lines = [f"{'metric':<{width}}  {'model':>10}  {'mean baseline':>13}"]
    for name in names:
        base = baseline.get(name) if baseline else None
        base_text = f"{base:13.2f}" if base is not None else f"{'-':>13}"
        lines.append(f"{name:<{width}}  {metrics[name]:10.2f}  {base_text}")
    return "\n".join(lines)


def write_metrics_json(path: Path, metrics: Mapping[str, float], baseline: Mapping[str, float], **extra) -> None:
    """``result/metrics.json``: every summary metric (mm), ``"baseline"`` (same keys) and
    ``extra`` (e.g. epoch, weights), written atomically."""
    payload = {**{k: float(v) for k, v in metrics.items()},
               "baseline": {k: float(v) for k, v in baseline.items()}, **extra}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- entry point
def resolve_weights(weights: str | os.PathLike) -> Path:
    """A checkpoint file, or the newest checkpoint of a folder (or of its ``checkpoint/``),
    as the original test configs sometimes name folders."""
    if not str(weights):
        raise Pose2MeshError("no model weights: pass --weights or set TEST.weight_path")
    path = Path(weights)
    if path.is_file():
        return path
    for folder in (path, path / "checkpoint"):
        found = latest_checkpoint(folder) if folder.is_dir() else None
        if found is not None:
            return found
    raise Pose2MeshError(f"model weights not found: {path} (no checkpoint file there)")


def log_cpu_allocations(log) -> None:
    """Log the huge-page allocation setting in effect (chosen by the command line)."""
    log.info("CPU allocations: THP_MEM_ALLOC_ENABLE=%s (THP_MEM_ALLOC_ENABLE=0 opts out)",
             os.environ.get("THP_MEM_ALLOC_ENABLE", "unset"))


def test_weights(cfg, weights: str | None = None) -> Path:
    """``--weights``, else ``TEST.weight_path``; when that file does not exist, the shipped
    pretrained model (``asset/pretrained/``) whose network fits the config, if there is one."""
    from pose2mesh.pretrained import matching_pretrained

    if weights or not cfg.TEST.weight_path or Path(cfg.TEST.weight_path).exists():
        return resolve_weights(weights if weights else cfg.TEST.weight_path)
    return matching_pretrained(cfg) or resolve_weights(cfg.TEST.weight_path)


def run_test(cfg, *, gpu: str | None = None, weights: str | None = None, exp_dir: str | None = None,
             reuse_freed_memory: bool = False) -> dict[str, float]:
    """The ``main/test.py`` job: load the weights, evaluate the model and the mean-pose
    baseline on the test set, print the table and write ``result/metrics.json`` (and OBJ
    samples under ``vis/`` with ``TEST.vis``). Returns the model's metrics (mm).

    The training set serves only the baseline: when it cannot be built (e.g. 3DPW evaluated
    without the Human36M/COCO/MuCo training files), the baseline is skipped with a logged
    warning and ``metrics.json`` says why (``baseline_skipped``)."""
    ctx = init_distributed(cfg.DEVICE)
    exp = None
    failed = True
    try:
        gpu_ids = parse_gpu_ids(gpu)
        device = resolve_device(cfg.DEVICE, gpu_ids, ctx)
        weights_path = test_weights(cfg, weights)
        exp, _ = prepare_experiment(cfg.OUTPUT_ROOT, ctx, exp_dir=exp_dir, training=False)
        log = setup_logger(exp.log_file, is_main=ctx.is_main)
        log.info("experiment folder: %s", exp.root)
        log_cpu_allocations(log)
        if reuse_freed_memory and device.type == "cpu" and keep_freed_memory():
            log.info("CPU memory: freed blocks are kept for reuse (glibc malloc, inference only; "
                     "--no_memory_reuse opts out)")
        builders.seed_everything(int(cfg.SEED) + ctx.rank)
        parts = builders.build_run_parts(cfg, device, train_set_optional=True)
        baseline_skipped = None
        if parts.train_set is None:
            baseline_skipped = f"the training set {list(cfg.DATASET.train_list)} is unavailable ({parts.train_set_error})"
            log.warning("mean-pose baseline skipped: %s", baseline_skipped)
        checkpoint = load_model_weights(parts.model, weights_path)
        shipped = " (shipped pretrained model)" if "source" in checkpoint else ""
        log.info("weights: %s%s (epoch %s)", weights_path, shipped, checkpoint.get("epoch", "?"))
        model = parts.model if ctx.is_distributed else wrap_model(parts.model, device, ctx, gpu_ids)
        evaluator = Evaluator(
            parts.test_set, builders.build_test_loader(cfg, parts.test_set, ctx, device), parts.body_model,
            device=device, ctx=ctx, amp=bool(cfg.TRAIN.amp),
        )
        metrics = evaluator.evaluate(model, vis_dir=exp.vis if cfg.TEST.vis else None, result_dir=exp.result)
        baseline = {}
        if parts.train_set is not None:
            baseline = evaluator.evaluate_mean_baseline(
                parts.train_set,
                builders.build_baseline_loader(cfg, parts.train_set, ctx, device),
            )
        if ctx.is_main:
            log.info("test metrics on %s (mm):\n%s", parts.test_set.name, format_metrics_table(metrics, baseline))
            extra = {"baseline_skipped": baseline_skipped} if baseline_skipped else {}
            write_metrics_json(exp.result / "metrics.json", metrics, baseline,
                               weights=str(weights_path), epoch=checkpoint.get("epoch"), **extra)
        failed = False
        return metrics
    finally:
        if failed and exp is not None and ctx.is_main:
            remove_unused_experiment(exp, get_logger())
        close_logger()
        shutdown_distributed()
