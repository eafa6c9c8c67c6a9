"""DistributedDataParallel set-up for ``torchrun``; a no-op for a single process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the torchrun process group (one process: the defaults)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join(device_kind: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (NCCL on CUDA, else gloo).

    Args:
        device_kind: "cuda", "cpu" or "mps".

    Returns:
        This process's rank and the process count (one process: the defaults).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def cleanup() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_across(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a (detached) tensor over all processes.

    Args:
        value: this process's tensor.
        info: the process group.

    Returns:
        The sum, a copy (``value`` itself for one process).
    """
    if not info.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def barrier(info: DistInfo) -> None:
    """Wait for every process (nothing to wait for with one).

    Args:
        info: the process group.
    """
    if info.enabled:
        dist.barrier()
