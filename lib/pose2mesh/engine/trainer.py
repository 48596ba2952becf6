"""The training loop: epochs of (prepare batch -> forward -> loss -> step), evaluation after
every epoch, atomic checkpoints, exact resume and a NaN/inf guard.

Use :func:`run_training` from a command line; :class:`Trainer` takes already built parts,
so tests (and other front ends) can train any model/dataset pair that honours the contracts.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from tqdm import tqdm

from pose2mesh.atomic_io import remove_stale_temporaries
from pose2mesh.engine import builders
from pose2mesh.engine.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    strip_module_prefix,
)
from pose2mesh.engine.distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    broadcast_buffers,
    init_distributed,
    parse_gpu_ids,
    resolve_device,
    shutdown_distributed,
    wrap_model,
)
from pose2mesh.engine.evaluator import (
    Evaluator,
    autocast_context,
    format_metrics_table,
    log_cpu_allocations,
    move_to_device,
    write_metrics_json,
)
from pose2mesh.engine.experiment import ExperimentDirs, prepare_experiment, remove_unused_experiment
from pose2mesh.engine.logging import RunRecorder, close_logger, get_logger, setup_logger
from pose2mesh.errors import Pose2MeshError
from pose2mesh.models.outputs import as_output_dict

LossFn = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor], int], dict[str, torch.Tensor]]
JOINT_METRIC = "MPJPE"  # the "test joint error" that selects best.pth.tar
SURFACE_METRIC = "MPVPE"


class Trainer:
    """Trains ``parts.model`` on ``parts.train_set`` and evaluates on ``parts.test_set``.

    Args:
        cfg: frozen config (TRAIN.*, TEST.*, MODEL.name, SEED are read).
        parts: body model, model (already on ``device``) and datasets.
        device: this process's device.
        ctx: distributed context (DDP when ``ctx.world_size > 1``).
        exp: output folders (only rank 0 writes into them).
        gpu_ids: ``--gpu`` devices (DataParallel when more than one).
        loss_fn: ``(outputs, batch, epoch) -> {"total": scalar, name: scalar, ...}``;
            default :func:`pose2mesh.engine.builders.build_loss_fn`.
    """

    def __init__(
        self,
        cfg,
        parts: builders.RunParts,
        *,
        device: torch.device,
        ctx: DistContext,
        exp: ExperimentDirs,
        gpu_ids=(),
        loss_fn: LossFn | None = None,
    ):
        self.cfg = cfg
        self.device = device
        self.ctx = ctx
        self.exp = exp
        self.log = get_logger()
        self.body_model = parts.body_model
        self.train_set = parts.train_set
        self.test_set = parts.test_set
        self.raw_model = parts.model
        self.seed = int(cfg.SEED)
        self.end_epoch = int(cfg.TRAIN.end_epoch)
        self.start_epoch = int(cfg.TRAIN.begin_epoch)
        self.amp = bool(cfg.TRAIN.amp)

        self.model = wrap_model(self.raw_model, device, ctx, gpu_ids)
        if cfg.TRAIN.compile:
            self.model = torch.compile(self.model)
        self.eval_model = self.raw_model if ctx.is_distributed else self.model
        self.loss_fn = loss_fn or builders.build_loss_fn(cfg, self.body_model, device)
        self.optimizer = builders.build_optimizer(cfg, self.raw_model.parameters())
        self.scheduler = builders.build_scheduler(cfg, self.optimizer)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp and device.type == "cuda")
        self.train_loader = builders.build_train_loader(cfg, self.train_set, ctx, device, self.seed)
        self.evaluator = Evaluator(
            self.test_set,
            builders.build_test_loader(cfg, self.test_set, ctx, device),
            self.body_model,
            device=device,
            ctx=ctx,
            amp=self.amp,
        )
        self.recorder = RunRecorder(exp.tb, exp.graph, enabled=ctx.is_main)

        self.train_history: list[dict] = []
        self.test_history: list[dict] = []
        self.best_metric = math.inf
        self.best_epoch = 0
        self.last_checkpoint: Path | None = None
        self._baseline: dict[str, float] | None = None

    # ------------------------------------------------------------------ state
    def checkpoint_state(self, epoch: int, rng_states: list) -> dict:
        joint = [entry.get(JOINT_METRIC, math.nan) for entry in self.test_history]
        surface = [entry[SURFACE_METRIC] for entry in self.test_history if SURFACE_METRIC in entry]
        return {
            "epoch": epoch,
            "model_state_dict": strip_module_prefix(self.raw_model.state_dict()),
            "optim_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.scheduler.state_dict(),
            "train_log": [entry["total"] for entry in self.train_history],
            "test_log": {"joint": joint, "surface": surface},
            "train_history": self.train_history,
            "test_history": self.test_history,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "scaler_state_dict": self.scaler.state_dict(),
            "rng_states": rng_states,
            "world_size": self.ctx.world_size,
            "config": self.cfg.dump(),
        }

    def resume(self, path: str | Path) -> None:
        """Restore model, optimizer, scheduler, scaler, histories, best metric and RNG
        states from a checkpoint; training continues at its epoch + 1. As in the original,
        the step scheduler's milestones and factor follow the current config (a no-op when
        it is unchanged)."""
        checkpoint = load_checkpoint(path)
        try:
            saved_lr = self._check_resumed_config(checkpoint.get("config"), path)
        except RecursionError:  # a crafted, deeply nested config text in the checkpoint
            from pose2mesh.errors import too_deeply_nested

            raise too_deeply_nested(f"--resume_training: the config saved in {path}") from None
        self.raw_model.load_state_dict(strip_module_prefix(checkpoint["model_state_dict"]))
        self.optimizer.load_state_dict(checkpoint["optim_state_dict"])
        new_lr = float(self.cfg.TRAIN.lr)
        if saved_lr is not None:  # the new TRAIN.lr, with the decays applied so far
            for group in self.optimizer.param_groups:
                group["lr"] *= new_lr / saved_lr
                group["initial_lr"] = new_lr
        self.scheduler.load_state_dict(checkpoint["scheduler_state_dict"])
        if saved_lr is not None and hasattr(self.scheduler, "base_lrs"):
            self.scheduler.base_lrs = [new_lr for _ in self.scheduler.base_lrs]
        builders.apply_schedule_config(self.cfg, self.scheduler)
        if checkpoint.get("scaler_state_dict"):
            self.scaler.load_state_dict(checkpoint["scaler_state_dict"])
        self.train_history = list(checkpoint.get("train_history", []))
        self.test_history = list(checkpoint.get("test_history", []))
        self.best_metric = float(checkpoint.get("best_metric", math.inf))
        self.best_epoch = int(checkpoint.get("best_epoch", 0))
        self.start_epoch = int(checkpoint["epoch"]) + 1
        self.last_checkpoint = Path(path)
        rng_states = checkpoint.get("rng_states") or []
        if len(rng_states) == self.ctx.world_size:
            restore_rng_state(rng_states[self.ctx.rank])
        else:
            self.log.warning(
                "checkpoint %s holds RNG states of %d process(es), this run has %d: reseeding "
                "(the run continues, but not bit-identically)", path, len(rng_states), self.ctx.world_size,
            )
            builders.seed_everything(self.seed + 1000 * self.start_epoch + self.ctx.rank)
        self.log.info("resumed from %s (epoch %d done)", path, self.start_epoch - 1)

    def _check_resumed_config(self, saved_text: str | None, path) -> float | None:
        """Compare the checkpoint's config with this run's: refuse changes that cannot resume
        (one line listing them), log the accepted ones. Returns the saved TRAIN.lr when the
        learning rate changed, else None. A key the saved config lacks (a checkpoint older
        than the key) counts as its default."""
        import yaml

        from pose2mesh.config import get_default_config

        if not saved_text:
            return None
        saved = {**flatten_config(yaml.safe_load(get_default_config().dump())),
                 **flatten_config(yaml.safe_load(saved_text))}
        current = flatten_config(yaml.safe_load(self.cfg.dump()))
        changed = {key: (saved.get(key), current.get(key)) for key in sorted(set(saved) | set(current))
                   if saved.get(key) != current.get(key)}
        refused = [key for key in changed if key in RESUME_FIXED_KEYS]
        if refused:
            listed = ", ".join(f"{key} {changed[key][0]!r} -> {changed[key][1]!r}" for key in refused)
            raise Pose2MeshError(f"--resume_training: {path} was trained with another {listed}; "
                                 "these cannot change in a resumed run (start a new --exp_dir)")
        for key, (old, new) in changed.items():
            self.log.info("resume: %s changed from %r to %r (accepted)", key, old, new)
        return float(changed["TRAIN.lr"][0]) if "TRAIN.lr" in changed else None

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, float]:
        """Train epochs ``start_epoch..end_epoch`` (inclusive); returns the last test metrics."""
        metrics: dict[str, float] = {}
        if self.start_epoch > self.end_epoch:
            self.log.info("nothing to train: epoch %d is past TRAIN.end_epoch %d", self.start_epoch - 1, self.end_epoch)
            return metrics
        self.log.info(
            "training %s on %s for epochs %d-%d (%d samples/epoch, %d process(es), device %s)",
            self.cfg.MODEL.name, self.train_set.name, self.start_epoch, self.end_epoch,
            len(self.train_loader) * self.train_loader.batch_size * self.ctx.world_size,
            self.ctx.world_size, self.device,
        )
        for epoch in range(self.start_epoch, self.end_epoch + 1):
            losses = self.train_one_epoch(epoch)
            metrics = self.evaluate()
            self._end_epoch(epoch, losses, metrics)
        return metrics

    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training loader; returns the mean of every loss (all ranks)."""
        builders.start_epoch(self.train_loader, self.train_set, epoch, self.seed, self.ctx.rank)
        self.model.train()
        names: list[str] | None = None
        sums = None
        print_freq = max(1, int(self.cfg.TRAIN.print_freq))
        bar = tqdm(self.train_loader, desc=f"epoch {epoch}/{self.end_epoch}", disable=not self.ctx.is_main,
                   dynamic_ncols=True, leave=False)
        for step, batch in enumerate(bar):
            batch = move_to_device(batch, self.device)
            with torch.no_grad():
                batch = self.train_set.prepare_batch(batch, self.body_model)
            with autocast_context(self.device, self.amp):
                outputs = as_output_dict(self.model(batch["pose2d"]))
            outputs = {key: value.float() for key, value in outputs.items()}
            losses = self.loss_fn(outputs, batch, epoch)
            names = names or sorted(losses)
            values = all_reduce_sum(torch.stack([losses[n].detach().float() for n in names]), self.ctx)
            values = (values / self.ctx.world_size).cpu()
            if not torch.isfinite(values).all():
                self._stop_on_non_finite(names, values, epoch, step)
            self._optimizer_step(losses["total"], epoch, step)
            sums = values if sums is None else sums + values
            if step % print_freq == 0:
                bar.set_postfix({n: f"{v:.4g}" for n, v in zip(names, values.tolist())}, refresh=False)
        bar.close()
        if hasattr(self.train_set, "end_epoch"):
            self.train_set.end_epoch(epoch)
        if sums is None:
            raise Pose2MeshError(f"the training loader of '{self.train_set.name}' yielded no batch")
        means = (sums / (step + 1)).tolist()
        return dict(zip(names, means))

    def _optimizer_step(self, total: torch.Tensor, epoch: int, step: int) -> None:
        """Backward, optional gradient clipping, the (scaled) optimizer step, the finite-weights check."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.TRAIN.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.cfg.TRAIN.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._check_weights_finite(epoch, step)

    def _check_weights_finite(self, epoch: int, step: int) -> None:
        """After every optimizer step (also the last of an epoch, before evaluation): stop
        when a weight became NaN/inf, naming the last good checkpoint."""
        maxima = torch.stack([p.detach().abs().amax() for p in self.raw_model.parameters()])
        if not torch.isfinite(maxima).all():
            kept = self.last_checkpoint if self.last_checkpoint is not None else "none written yet"
            raise Pose2MeshError(
                f"training stopped: non-finite weights after the optimizer step at epoch {epoch}, "
                f"iteration {step} (is TRAIN.lr too large?); last good checkpoint: {kept}")

    def _stop_on_non_finite(self, names, values, epoch: int, step: int) -> None:
        bad = ", ".join(f"{n}={v}" for n, v in zip(names, values.tolist()) if not math.isfinite(v))
        kept = self.last_checkpoint if self.last_checkpoint is not None else "none written yet"
        raise Pose2MeshError(
            f"training stopped: non-finite loss ({bad}) at epoch {epoch}, iteration {step}; "
            f"last good checkpoint: {kept}"
        )

    def evaluate(self) -> dict[str, float]:
        broadcast_buffers(self.raw_model, self.ctx)
        metrics = self.evaluator.evaluate(self.eval_model, result_dir=self.exp.result)
        self.model.train()
        return metrics

    def baseline(self) -> dict[str, float]:
        """Metrics of the training-set mean pose/mesh (estimated once per run)."""
        if self._baseline is None:
            loader = builders.build_baseline_loader(self.cfg, self.train_set, self.ctx, self.device)
            self._baseline = self.evaluator.evaluate_mean_baseline(self.train_set, loader)
        return self._baseline

    def _end_epoch(self, epoch: int, losses: dict[str, float], metrics: dict[str, float]) -> None:
        """After evaluation, in this order (exact resume relies on it): schedule, record, checkpoint, report."""
        joint_error = metrics[JOINT_METRIC]
        self._step_scheduler(joint_error)
        is_best = self._update_best(epoch, joint_error)
        lr = self.optimizer.param_groups[0]["lr"]  # after the step: the next epoch's rate
        self._record_histories(epoch, losses, metrics)
        baseline = self.baseline()
        # Every rank contributes its RNG state (needed for an exact DDP resume); rank 0 writes.
        rng_states = all_gather_objects(capture_rng_state(), self.ctx)
        if self.ctx.is_main:
            self._save(epoch, rng_states, is_best)
            self._write_records(epoch, losses, metrics, lr, baseline)
            self._log_epoch(epoch, losses, metrics, lr, baseline, is_best)
        barrier(self.ctx)

    def _step_scheduler(self, joint_error: float) -> None:
        """Step the learning-rate schedule once (a plateau schedule on the test joint error)."""
        if builders.scheduler_needs_metric(self.scheduler):
            self.scheduler.step(joint_error)
        else:
            self.scheduler.step()

    def _update_best(self, epoch: int, joint_error: float) -> bool:
        """Keep the lowest test joint error and its epoch; True when this epoch is the new best."""
        is_best = joint_error < self.best_metric
        if is_best:
            self.best_metric, self.best_epoch = joint_error, epoch
        return is_best

    def _record_histories(self, epoch: int, losses: dict[str, float], metrics: dict[str, float]) -> None:
        """Append this epoch's mean losses and test metrics to the histories the checkpoint holds."""
        self.train_history.append({"epoch": epoch, **losses})
        self.test_history.append({"epoch": epoch, **metrics})

    def _write_records(self, epoch: int, losses: dict[str, float], metrics: dict[str, float], lr: float,
                       baseline: dict[str, float]) -> None:
        """Write the TensorBoard scalars, the loss/metric curves and ``result/metrics.json``."""
        self.recorder.scalars("train", {**losses, "lr": lr}, epoch)
        self.recorder.scalars("test", metrics, epoch)
        self.recorder.plot_curves(self.train_history, self.test_history)
        write_metrics_json(self.exp.result / "metrics.json", metrics, baseline, epoch=epoch)

    def _log_epoch(self, epoch: int, losses: dict[str, float], metrics: dict[str, float], lr: float,
                   baseline: dict[str, float], is_best: bool) -> None:
        """Log the epoch's one line (losses, lr, metrics) and, after the last epoch, the table."""
        loss_text = " ".join(f"{n}={v:.4g}" for n, v in losses.items())
        self.log.info("epoch %d: %s lr=%.3g | %s%s", epoch, loss_text, lr,
                      " ".join(f"{k}={v:.2f}" for k, v in metrics.items()), " (best)" if is_best else "")
        if epoch == self.end_epoch:
            self.log.info("final test metrics (mm):\n%s", format_metrics_table(metrics, baseline))

    def _save(self, epoch: int, rng_states, is_best: bool) -> None:
        """Write this epoch's checkpoint; a failed write (e.g. a full disk) stops the run with
        one line, the earlier checkpoints untouched (atomic writes)."""
        try:
            self.last_checkpoint = save_checkpoint(
                self.checkpoint_state(epoch, rng_states), self.exp.checkpoint,
                is_final=epoch == self.end_epoch, is_best=is_best,
            )
        except (OSError, RuntimeError) as err:
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            kept = self.last_checkpoint if self.last_checkpoint is not None else "none written yet"
            raise Pose2MeshError(
                f"training stopped: cannot write the epoch {epoch} checkpoint in {self.exp.checkpoint} "
                f"({reason}; is the disk full?); earlier checkpoints are intact, the last: {kept}"
            ) from None

    def close(self) -> None:
        self.recorder.close()


# ---------------------------------------------------------------------------- entry point
RESUME_FIXED_KEYS = ("MODEL.name", "MODEL.body_model", "MODEL.topology", "MODEL.graph_levels",
                     "MODEL.cheb_order", "MODEL.lifter", "MODEL.posenet_hidden", "MODEL.posenet_stages",
                     "MODEL.hgn_hidden", "MODEL.hgn_blocks", "MODEL.hgn_mesh_nodes",
                     "MODEL.input_shape", "DATASET.input_joint_set", "DATASET.target_joint_set",
                     "TRAIN.optimizer", "TRAIN.scheduler", "TRAIN.amp")
"""Config keys a resumed run must keep: they fix the network's shapes, its input and output, or
the optimizer and scheduler state that the checkpoint holds."""


def flatten_config(values: dict, prefix: str = "") -> dict:
    """{"SECTION.key": value} of a nested config mapping."""
    flat = {}
    for key, value in (values or {}).items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def run_training(cfg, *, gpu: str | None = None, resume: bool = False, exp_dir: str | None = None) -> dict[str, float]:
    """The ``main/train.py`` job: set up devices (single, DataParallel or torchrun DDP),
    the experiment folder and logging, build everything from ``cfg`` and train.

    Returns the final test metrics (mm).
    """
    ctx = init_distributed(cfg.DEVICE)
    trainer = exp = None
    failed = True
    try:
        gpu_ids = parse_gpu_ids(gpu)
        device = resolve_device(cfg.DEVICE, gpu_ids, ctx)
        exp, checkpoint = prepare_experiment(cfg.OUTPUT_ROOT, ctx, exp_dir=exp_dir, resume=resume, training=True)
        log = setup_logger(exp.log_file, is_main=ctx.is_main)
        log.info("experiment folder: %s", exp.root)
        log_cpu_allocations(log)
        if ctx.is_main:
            for stale in remove_stale_temporaries(exp.checkpoint):
                log.info("removed %s, left by an interrupted checkpoint write", stale.name)
        if ctx.is_distributed and gpu_ids:
            log.warning("--gpu is ignored under torchrun: each process uses its LOCAL_RANK device")
        if ctx.is_main and checkpoint is None:
            (exp.root / "config.yaml").write_text(cfg.dump())
        builders.seed_everything(int(cfg.SEED) + ctx.rank)
        parts = builders.build_run_parts(cfg, device)
        trainer = Trainer(cfg, parts, device=device, ctx=ctx, exp=exp, gpu_ids=gpu_ids)
        if checkpoint is not None:
            trainer.resume(checkpoint)
        metrics = trainer.fit()
        failed = False
        return metrics
    finally:
        if trainer is not None:
            trainer.close()
        if failed and exp is not None and ctx.is_main:
            remove_unused_experiment(exp, get_logger())
        close_logger()
        shutdown_distributed()
