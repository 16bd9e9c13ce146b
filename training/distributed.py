"""Distributed training under `torchrun`: DDP, the all-gather that keeps the memory bank global.

    torchrun --nproc_per_node 4 -m msfkit.cli train --preset ... batch_size=256

`torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK; without them everything runs in one process and
these helpers are no-ops. NCCL on CUDA, gloo on CPU. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> Dist:
    """Join the process group that torchrun describes (if any) and pin this process's GPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank)


def all_gather(t: torch.Tensor) -> torch.Tensor:
    """The rows of `t` from every process, concatenated in rank order (no gradient)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def all_finite(value: torch.Tensor) -> bool:
    """Whether `value` is finite on every process (so that all of them stop together)."""
    ok = torch.isfinite(value.detach()).all().to(torch.int32).reshape(1)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def any_rank(flag: bool) -> bool:
    """Whether `flag` is true on any process (so that a time limit stops all of them at one step)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def wrap_ddp(model: nn.Module, d: Dist, device: torch.device, sync_bn: bool) -> nn.Module:
    """DDP over the whole MSF module; the bank and BN statistics are never broadcast per step.

    broadcast_buffers=False: every process updates the bank with the same gathered rows, so
    it stays identical without copying it (1M x 512 floats) each step.
    """
    if d.world_size == 1:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
