"""The little coordination `embed` needs under `torchrun`: rank, device, barrier, broadcast, sums.

Without torchrun (no WORLD_SIZE > 1 in the environment) everything is a no-op for one process.
Coordination uses a gloo group even on GPUs: only small Python objects and counts travel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from msfkit.models.errors import MsfkitError

# Ranks wait for each other only at the start and the end; a slow rank may lag by hours.
_TIMEOUT = timedelta(hours=24)


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
    def from_env(cls) -> Ranks:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("gloo", timeout=_TIMEOUT)
        group = (
            dist.new_group(backend="gloo", timeout=_TIMEOUT)
            if not owns and dist.get_backend() != "gloo"
            else None
        )
        return cls(
            rank=dist.get_rank(),
            world=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
            group=group,
            owns_init=owns,
        )

    def device(self, name: str):
        """'auto' | 'cpu' | 'cuda' -> this rank's torch.device (cuda:LOCAL_RANK under torchrun)."""
        import torch

        if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
            raise MsfkitError(f"device must be auto, cpu or cuda, not {name!r}")
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise MsfkitError(f"--device {name}: no CUDA device is visible to torch")
        if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
            return torch.device("cpu")
        if name.startswith("cuda:"):
            return torch.device(name)
        return torch.device("cuda", self.local_rank % torch.cuda.device_count())

    def from_rank0(self, fn: Callable[[], Any]) -> Any:
        """fn() run on rank 0 and its result given to every rank; its MsfkitError raised on every rank."""
        if self.world == 1:
            return fn()
        import torch.distributed as dist

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
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.int64)
        dist.all_reduce(t, group=self.group)
        return tuple(int(v) for v in t)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier(group=self.group)

    def close(self) -> None:
        if self.owns_init:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_init = False
