"""torchrun helpers: device choice, process-group setup from the environment, DDP wrapping, rank
queries, reductions."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun: a process group exists (also for one process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """DDP, collectives and barriers are on: under torchrun, whatever the world size."""
        return self.launched


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``train.device``: ``auto`` is CUDA when available, else CPU; ``cuda`` means this process's
    local GPU. A name that is no device, or a device this machine lacks, is a ConfigError."""
    from ..config import ConfigError

    wanted = name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"train.device={wanted!r} is not a device to train on; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={wanted!r}, but PyTorch finds no CUDA GPU on this machine; "
                          f"use train.device=cpu (or auto)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"train.device={wanted!r} names GPU {device.index or 0}, but this machine has "
                          f"{torch.cuda.device_count()}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device={wanted!r}, but PyTorch finds no MPS device on this machine; "
                          f"use train.device=cpu (or auto)")
    return device


def setup(device_kind: str) -> DistInfo:
    """Join the process group that torchrun describes in the environment (RANK, WORLD_SIZE and
    MASTER_ADDR set), also with one process (``torchrun --nproc_per_node=1`` runs the DDP code
    path, NCCL included); NCCL for CUDA, gloo otherwise. A process started without torchrun gets
    DistInfo() and no process group."""
    if not all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR")):
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                    int(os.environ.get("LOCAL_RANK", "0")), launched=True)
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """The module to train: DistributedDataParallel under torchrun, the model itself otherwise."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def any_flag(flag: bool, info: DistInfo, device) -> bool:
    """True on every rank if ``flag`` is True on any rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(value: float, info: DistInfo, device) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / info.world_size
