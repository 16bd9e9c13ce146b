"""What runs where under torchrun: ranks, devices and the little coordination `embed` and training need.

`Ranks` is the little coordination `embed` needs under `torchrun`: rank, device, barrier, broadcast, sums.

Without torchrun (no WORLD_SIZE > 1 in the environment) everything is a no-op for one process.
Coordination uses a gloo group even on GPUs: only small Python objects and counts travel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import resolve_device

# Embedding ranks wait for each other only at the start and the end; a slow rank may lag by hours.
EMBED_TIMEOUT = timedelta(hours=24)


@dataclass
class Ranks:
    """This process's place in a torchrun job (rank 0 of 1 when there is none)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    group: Any = None
    owns_init: bool = False  # whether we initialised torch.distributed (and so tear it down)

    @classmethod
    def from_env(cls, device_type: str = "cpu", timeout: timedelta | None = None) -> Ranks:
        """Join the process group torchrun describes (if any): NCCL for a CUDA job's tensors (with a
        gloo group beside it for Python objects), gloo otherwise. `timeout`: torch's default if None."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=timeout)
        group = dist.new_group(backend="gloo", timeout=timeout) if dist.get_backend() != "gloo" else None
        return cls(
            rank=dist.get_rank(),
            world=dist.get_world_size(),
            local_rank=local_rank,
            local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
            group=group,
            owns_init=owns,
        )

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and reports."""
        return self.rank == 0

    def device(self, name: str):
        """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> this rank's torch.device (cuda:LOCAL_RANK under torchrun)."""
        return resolve_device(name, self.local_rank)

    def from_rank0(self, fn: Callable[[], Any]) -> Any:
        """fn() run on rank 0 and its result given to every rank; its MsfkitError raised on every rank."""
        if self.world == 1:
            return fn()
        box: list[Any] = [None]
        failure: BaseException | None = None
        if self.rank == 0:
            try:
                box[0] = ("ok", fn())
            except Exception as e:  # tell the other ranks, or they would wait for the broadcast forever
                failure, box[0] = e, ("error", str(e))
        dist.broadcast_object_list(box, src=0, group=self.group)
        if failure is not None:
            raise failure
        status, value = box[0]
        if status == "error":
            raise MsfkitError(value)
        return value

    def sum(self, values: tuple[int, ...]) -> tuple[int, ...]:
        """Element-wise sum of small integer tuples over ranks."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.int64)
        dist.all_reduce(t, group=self.group)
        return tuple(int(v) for v in t)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier(group=self.group)

    def close(self) -> None:
        if self.owns_init:
            dist.destroy_process_group()
            self.owns_init = False
