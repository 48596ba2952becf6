"""Multi-device execution: single device, DataParallel (``--gpu 0,1``) and
DistributedDataParallel (launched by ``torchrun``; gloo on CPU, nccl on CUDA).

Under ``torchrun`` every process runs the same script; only rank 0 writes files, metrics are
reduced across ranks, and :class:`ShardSampler` splits the test set without padding so that
gathered per-sample errors equal a single-process run's.
"""
from __future__ import annotations

import datetime
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pose2mesh.errors import Pose2MeshError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` (1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def parse_gpu_ids(text: str | None) -> list[int]:
    """``"0,1"`` -> [0, 1]; ``None`` or ``""`` -> []. Raises Pose2MeshError on bad syntax."""
    if not text or not text.strip():
        return []
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise Pose2MeshError(f"--gpu expects comma-separated device numbers such as 0,1; got '{text}'") from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise Pose2MeshError(f"--gpu expects distinct non-negative device numbers; got '{text}'")
    return ids


def resolve_device(device_cfg: str, gpu_ids: Sequence[int], ctx: DistContext) -> torch.device:
    """The device this process trains on.

    Precedence: torchrun (``cuda:LOCAL_RANK`` when CUDA is usable, else CPU), then ``--gpu``
    (its first id), then ``cfg.DEVICE`` ("auto", "cpu", "cuda", "cuda:1", ...).

    Raises:
        Pose2MeshError: ``--gpu`` or a CUDA ``DEVICE`` without CUDA (``--gpu`` is accepted on a
            machine without CUDA only when ``DEVICE`` is ``cpu``: DataParallel then just
            calls the module), or a device number that does not exist.
    """
    cuda_ok = torch.cuda.is_available()
    device_cfg = str(device_cfg).strip().lower()
    if ctx.is_distributed or launched_by_torchrun():
        if device_cfg == "cpu" or not cuda_ok:
            return torch.device("cpu")
        return _checked_cuda(ctx.local_rank, "LOCAL_RANK")
    if gpu_ids:
        if not cuda_ok:
            if device_cfg == "cpu":
                return torch.device("cpu")
            raise Pose2MeshError(
                f"--gpu {','.join(map(str, gpu_ids))} needs CUDA, which is not available here "
                "(drop --gpu, or set DEVICE cpu)"
            )
        for gpu in gpu_ids:
            _checked_cuda(gpu, "--gpu")
        return torch.device("cuda", gpu_ids[0])
    if device_cfg == "auto":
        return torch.device("cuda" if cuda_ok else "cpu")
    try:
        device = torch.device(device_cfg)
    except RuntimeError:
        raise Pose2MeshError(f"DEVICE '{device_cfg}' is not a device name (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda":
        if not cuda_ok:
            raise Pose2MeshError(f"DEVICE '{device_cfg}' needs CUDA, which is not available here (use DEVICE cpu)")
        return _checked_cuda(device.index or 0, "DEVICE")
    return device


def _checked_cuda(index: int, source: str) -> torch.device:
    count = torch.cuda.device_count()
    if index >= count:
        raise Pose2MeshError(f"{source}: CUDA device {index} does not exist ({count} visible)")
    return torch.device("cuda", index)


def init_distributed(device_cfg: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun; otherwise a single-process context.

    The backend is nccl when this process will train on CUDA, gloo otherwise.
    """
    if not launched_by_torchrun():
        return DistContext()
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    ctx = DistContext(rank=rank, world_size=world_size, local_rank=local_rank)
    if world_size > 1 and not dist.is_initialized():
        device = resolve_device(device_cfg, [], ctx)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=30),
        )
    return ctx


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(
    model: torch.nn.Module, device: torch.device, ctx: DistContext, gpu_ids: Sequence[int]
) -> torch.nn.Module:
    """DDP under torchrun; DataParallel over ``gpu_ids`` when more than one is given (on a
    machine without CUDA DataParallel only calls the module); else the module itself."""
    if ctx.is_distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if len(gpu_ids) > 1 or (gpu_ids and device.type == "cpu"):
        device_ids = list(gpu_ids) if device.type == "cuda" else None
        return torch.nn.DataParallel(model, device_ids=device_ids)
    return model


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DataParallel / DDP / torch.compile wrappers."""
    while True:
        if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


# ----------------------------------------------------------------------------- collectives
def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of ``tensor`` over ranks (a copy; the input is unchanged)."""
    tensor = tensor.clone()
    if ctx.is_distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj, ctx: DistContext) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (picklable objects)."""
    if not ctx.is_distributed:
        return [obj]
    gathered = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank."""
    if not ctx.is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (e.g. batch-norm running statistics, which each DDP rank
    updates from its own last batch) to every rank, so all ranks hold the same model."""
    if ctx.is_distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def barrier(ctx: DistContext) -> None:
    if ctx.is_distributed:
        dist.barrier()


class ShardSampler(torch.utils.data.Sampler[int]):
    """In-order, unpadded shard of ``range(size)`` for one rank: rank, rank + W, ...

    Unlike DistributedSampler it never repeats samples, so per-sample evaluation results
    gathered from all ranks cover the dataset exactly once.
    """

    def __init__(self, size: int, ctx: DistContext):
        self.size = size
        self.ctx = ctx

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.ctx.rank, self.size, self.ctx.world_size))

    def __len__(self) -> int:
        return len(range(self.ctx.rank, self.size, self.ctx.world_size))
