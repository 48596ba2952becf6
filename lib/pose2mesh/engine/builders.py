"""Build every run component from the config: device, body model, mesh hierarchy, model,
optimizer, scheduler, datasets and loaders.

Determinism: the training order comes from a DistributedSampler (also with one process)
seeded by ``SEED`` and reshuffled by ``set_epoch``; the loader's generator (worker base
seeds) is reseeded per epoch from (``SEED``, epoch, rank); workers seed numpy and
``random`` from their torch seed. Nothing here reads the global RNG during an epoch, so a
run resumed from a checkpoint replays the same batches.
"""
from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from pose2mesh.engine.distributed import DistContext, ShardSampler
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import get_joint_set

HAND_BODY_MODELS = ("anny_hand", "mano")
DEFAULT_LEVELS = {"body": 9, "hand": 6}
DEBUG_MAX_SAMPLES = 64
DEBUG_EPOCHS = 2
BASELINE_SAMPLES = 3200  # training samples behind the mean-pose baseline (50 batches of 64)


def graph_cache_dir() -> Path:
    """Where mesh hierarchies are cached (``$POSE2MESH_CACHE_DIR`` or ~/.cache/pose2mesh)."""
    root = os.environ.get("POSE2MESH_CACHE_DIR") or Path.home() / ".cache" / "pose2mesh"
    return Path(root) / "graphs"


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and python ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def debug_overrides(cfg) -> list[str]:
    """``KEY VALUE`` overrides of ``--debug``: tiny datasets, two epochs, no workers."""
    return [
        "DATASET.debug_max_samples", str(DEBUG_MAX_SAMPLES),
        "DATASET.workers", "0",
        "TRAIN.end_epoch", str(cfg.TRAIN.begin_epoch + DEBUG_EPOCHS - 1),
        "TRAIN.batch_size", str(min(cfg.TRAIN.batch_size, 16)),
        "TEST.batch_size", str(min(cfg.TEST.batch_size, 32)),
        "TRAIN.print_freq", "1",
    ]


# ----------------------------------------------------------------------------- models
def build_body_model(cfg, device: torch.device) -> torch.nn.Module:
    """The experiment's BodyModel on ``device`` (frozen, eval mode)."""
    from pose2mesh.body_models import build_body_model as build

    body_model = build(
        cfg.MODEL.body_model,
        topology=cfg.MODEL.topology,
        smpl_dir=cfg.SMPL_DIR,
        mano_dir=cfg.MANO_DIR,
        data_dir=cfg.DATA_DIR,
    )
    body_model.requires_grad_(False)
    return body_model.to(device).eval()


def graph_levels(cfg) -> int:
    if cfg.MODEL.graph_levels > 0:
        return int(cfg.MODEL.graph_levels)
    return DEFAULT_LEVELS["hand" if cfg.MODEL.body_model in HAND_BODY_MODELS else "body"]


def build_hierarchy(cfg, body_model):
    """The body model's mesh hierarchy (cached on disk); None for a PoseNet-only model."""
    if cfg.MODEL.name == "posenet":
        return None
    from pose2mesh.graph import build_mesh_hierarchy

    return build_mesh_hierarchy(
        body_model.faces.detach().cpu().numpy(),
        int(body_model.num_vertices),
        graph_levels(cfg),
        cache_dir=graph_cache_dir(),
    )


def build_network(cfg, hierarchy) -> torch.nn.Module:
    """``pose2mesh.models.build_model`` for the input joint set."""
    from pose2mesh.models import build_model

    return build_model(cfg, get_joint_set(cfg.DATASET.input_joint_set), hierarchy)


def build_optimizer(cfg, parameters) -> torch.optim.Optimizer:
    name = cfg.TRAIN.optimizer.lower()
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=cfg.TRAIN.lr)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=cfg.TRAIN.lr)
    raise Pose2MeshError(f"TRAIN.optimizer must be 'rmsprop' or 'adam', got '{cfg.TRAIN.optimizer}'")


def build_scheduler(cfg, optimizer: torch.optim.Optimizer):
    """'step': MultiStepLR(lr_step, lr_factor), stepped once per epoch.
    'platue' (original spelling): ReduceLROnPlateau(factor=lr_factor), stepped once per
    epoch with the test joint error (mm)."""
    name = cfg.TRAIN.scheduler.lower()
    if name == "step":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(cfg.TRAIN.lr_step), gamma=cfg.TRAIN.lr_factor
        )
    if name == "platue":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.TRAIN.lr_factor)
    raise Pose2MeshError(f"TRAIN.scheduler must be 'step' or 'platue', got '{cfg.TRAIN.scheduler}'")


def apply_schedule_config(cfg, scheduler) -> None:
    """Set a restored MultiStepLR's milestones and factor from ``cfg`` (TRAIN.lr_step,
    TRAIN.lr_factor), so that a resumed run may change its schedule."""
    if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
        scheduler.milestones = Counter(cfg.TRAIN.lr_step)
        scheduler.gamma = cfg.TRAIN.lr_factor


def scheduler_needs_metric(scheduler) -> bool:
    return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


# ----------------------------------------------------------------------------- data
def build_train_dataset(cfg, body_model):
    """The training dataset: the single entry of ``DATASET.train_list`` or their mix."""
    from pose2mesh.datasets.registry import build_dataset

    names = list(cfg.DATASET.train_list)
    if not names:
        raise Pose2MeshError("DATASET.train_list is empty")
    datasets = [build_dataset(cfg, name, "train", body_model) for name in names]
    if len(datasets) == 1:
        return datasets[0]
    from pose2mesh.datasets.mixed import MixedDataset

    return MixedDataset(datasets, seed=int(cfg.SEED))


def build_test_dataset(cfg, body_model):
    """The first dataset of ``DATASET.test_list`` (the original evaluates only that one)."""
    from pose2mesh.datasets.registry import build_dataset

    if not cfg.DATASET.test_list:
        raise Pose2MeshError("DATASET.test_list is empty")
    return build_dataset(cfg, cfg.DATASET.test_list[0], "test", body_model)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: numpy and ``random`` follow the worker's torch seed
    (itself derived from the loader generator), so augmentation noise differs per worker
    and is reproducible."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def num_workers(cfg) -> int:
    """DATASET.workers, capped by the CPUs this process may use."""
    return max(0, min(int(cfg.DATASET.workers), len(os.sched_getaffinity(0))))


def per_rank_batch_size(total: int, ctx: DistContext, what: str) -> int:
    """The original's batch size is the total over devices; each DDP rank takes a share."""
    if total < ctx.world_size:
        raise Pose2MeshError(f"{what} {total} is smaller than the number of processes {ctx.world_size}")
    return total // ctx.world_size


def loader_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of the loader generator for one (seed, epoch, rank)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def train_batch_size(cfg, dataset) -> int:
    """TRAIN.batch_size, rounded down to a multiple of the number of mixed datasets (as the
    original does for a multi-dataset train list)."""
    from pose2mesh.datasets.mixed import MixedDataset

    mixed = len(dataset.datasets) if isinstance(dataset, MixedDataset) else 1
    total = (int(cfg.TRAIN.batch_size) // mixed) * mixed
    if total == 0:
        raise Pose2MeshError(f"TRAIN.batch_size {cfg.TRAIN.batch_size} is smaller than the {mixed} mixed datasets")
    return total


def build_train_loader(cfg, dataset, ctx: DistContext, device: torch.device, seed: int) -> DataLoader:
    """Shuffled (TRAIN.shuffle) loader over this rank's share; the last incomplete batch is
    dropped (batch norm cannot train on a single sample). Call :func:`start_epoch` before
    iterating each epoch. The dataset's own ``collate_fn`` is used when it has one."""
    sampler = DistributedSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=bool(cfg.TRAIN.shuffle), seed=seed
    )
    batch_size = min(per_rank_batch_size(train_batch_size(cfg, dataset), ctx, "TRAIN.batch_size"), len(sampler))
    if batch_size == 0:
        raise Pose2MeshError(f"training dataset '{dataset.name}' is empty")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        collate_fn=getattr(dataset, "collate_fn", None),
        num_workers=num_workers(cfg),
        pin_memory=device.type == "cuda",
        worker_init_fn=seed_worker,
        generator=torch.Generator(),
    )


def start_epoch(loader: DataLoader, dataset, epoch: int, seed: int, rank: int) -> None:
    """Reseed everything that orders or randomises the training data of ``epoch``."""
    dataset.set_epoch(epoch)
    loader.sampler.set_epoch(epoch)
    loader.generator.manual_seed(loader_seed(seed, epoch, rank))


def build_test_loader(cfg, dataset, ctx: DistContext, device: torch.device) -> DataLoader:
    """In-order loader over this rank's unpadded shard of the test set."""
    if len(dataset) == 0:
        raise Pose2MeshError(f"test dataset '{dataset.name}' is empty")
    return DataLoader(
        dataset,
        batch_size=cfg.TEST.batch_size,
        sampler=ShardSampler(len(dataset), ctx),
        num_workers=num_workers(cfg),
        pin_memory=device.type == "cuda",
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(int(cfg.SEED)),
    )


def build_baseline_loader(cfg, dataset, ctx: DistContext, device: torch.device,
                          num_samples: int = BASELINE_SAMPLES) -> DataLoader:
    """Loader over a fixed random subset of ``num_samples`` training samples (seeded by
    ``SEED``, independent of the batch size), sharded over ranks; it feeds the estimate of
    the training-set mean pose/mesh."""
    count = min(len(dataset), num_samples)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(int(cfg.SEED)))[:count]
    subset = torch.utils.data.Subset(dataset, order[ctx.rank::ctx.world_size].tolist())
    return DataLoader(
        subset,
        batch_size=per_rank_batch_size(train_batch_size(cfg, dataset), ctx, "TRAIN.batch_size"),
        collate_fn=getattr(dataset, "collate_fn", None),
        num_workers=num_workers(cfg),
        pin_memory=device.type == "cuda",
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(int(cfg.SEED)),
    )


@dataclass
class RunParts:
    """What a run is made of, before any multi-device wrapping. ``train_set_error``: why the
    training set is None when it was optional and could not be built."""

    body_model: torch.nn.Module
    model: torch.nn.Module
    train_set: object | None
    test_set: object
    train_set_error: str | None = None


def build_run_parts(cfg, device: torch.device, *, with_train_set: bool = True,
                    train_set_optional: bool = False) -> RunParts:
    """Body model, network (on ``device``) and datasets of an experiment.

    Args:
        train_set_optional: a training set that cannot be built (its Pose2MeshError, e.g. a
            missing file) gives ``train_set`` None and the message in ``train_set_error``
            instead of failing (evaluation needs it only for the mean-pose baseline).
    """
    body_model = build_body_model(cfg, device)
    hierarchy = build_hierarchy(cfg, body_model)
    model = build_network(cfg, hierarchy).to(device)
    train_set, train_set_error = None, None
    if with_train_set:
        try:
            train_set = build_train_dataset(cfg, body_model)
        except Pose2MeshError as err:
            if not train_set_optional:
                raise
            train_set_error = str(err)
    test_set = build_test_dataset(cfg, body_model)
    return RunParts(body_model=body_model, model=model, train_set=train_set, test_set=test_set,
                    train_set_error=train_set_error)


def build_loss_fn(cfg, body_model, device: torch.device):
    """``(outputs, batch, epoch) -> {"total": scalar, ...}`` for cfg.MODEL.name.

    A lifter: :class:`pose2mesh.losses.LifterLoss` (masked L1 in mm; for HGN plus its
    coarse-mesh constraint). Pose2Mesh: :class:`pose2mesh.losses.Pose2MeshCriterion` on the
    body model's faces and its regressor of ``DATASET.target_joint_set`` (plus the coarse-mesh
    constraint when the lifter is HGN).
    """
    from pose2mesh.losses import LifterLoss, Pose2MeshCriterion

    name = cfg.MODEL.name
    lifter = name if name != "pose2mesh_net" else cfg.MODEL.lifter
    coarse = build_coarse_mesh_loss(cfg, body_model) if lifter == "hgn" else None
    if name != "pose2mesh_net":
        return LifterLoss(coarse, cfg.MODEL.coarse_mesh_loss_weight).to(device)
    regressor = body_model.joint_regressor(cfg.DATASET.target_joint_set)
    return Pose2MeshCriterion(cfg, body_model.faces, regressor, coarse).to(device)


def build_coarse_mesh_loss(cfg, body_model):
    """HGN's :class:`pose2mesh.losses.CoarseMeshLoss`: the cluster means of the mesh scales
    the HGN of this config uses, relative to the input joint set's root."""
    from pose2mesh.graph.multiscale import build_multiscale_graphs
    from pose2mesh.losses import CoarseMeshLoss

    joint_set = get_joint_set(cfg.DATASET.input_joint_set)
    graphs = build_multiscale_graphs(joint_set, build_hierarchy(cfg, body_model), list(cfg.MODEL.hgn_mesh_nodes))
    root_regressor = body_model.joint_regressor(joint_set.name)[joint_set.root]
    return CoarseMeshLoss(graphs.poolings, root_regressor.detach().cpu())
