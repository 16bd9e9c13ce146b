"""Distributed training under `torchrun`: DDP, the all-gather that keeps the memory bank global.

    torchrun --nproc_per_node 4 -m msfkit.cli train --preset ... batch_size=256

`torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK; without them everything runs in one process and
these helpers are no-ops. Joining the job is `msfkit.runtime.Ranks.from_env` (NCCL on CUDA, gloo
on CPU), as for `msfkit embed`. Only rank 0 writes files.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from msfkit.runtime import Ranks


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


def wrap_ddp(model: nn.Module, d: Ranks, device: torch.device, sync_bn: bool) -> nn.Module:
    """DDP over the whole MSF module; the bank and BN statistics are never broadcast per step.

    broadcast_buffers=False: every process updates the bank with the same gathered rows, so
    it stays identical without copying it (1M x 512 floats) each step.
    """
    if d.world == 1:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)
