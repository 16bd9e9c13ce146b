"""What runs where, shared by every command: torchrun ranks, the Ray cluster, and sizes in bytes.

`Ranks` is the little coordination `embed` needs under `torchrun`: rank, device, barrier, broadcast, sums.

Without torchrun (no WORLD_SIZE > 1 in the environment) everything is a no-op for one process.
Coordination uses a gloo group even on GPUs: only small Python objects and counts travel.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
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


_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*")
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20}
_UNITS |= {"g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}


def parse_size(text: str | int, what: str = "size") -> int:
    """'4GB', '512MiB', '2g', '1.5GiB' or a byte count -> bytes (units are powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _SIZE.fullmatch(str(text))
    if not m or m[2].lower() not in _UNITS:
        raise MsfkitError(f"{what} {text!r}: expected a size such as 512MB, 4GB or 1.5GiB")
    return int(float(m[1]) * _UNITS[m[2].lower()])


def format_bytes(n: float) -> str:
    """A byte count for people: '1.9 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def cache_dir(*parts: str) -> Path:
    """msfkit's cache folder (reusable work such as evaluation features): $MSFKIT_CACHE, else
    $XDG_CACHE_HOME/msfkit, else ~/.cache/msfkit; never the current folder."""
    root = os.environ.get("MSFKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "msfkit"
    )
    return Path(root, *parts)


# The Ray cluster that `--engine ray` runs on (embedding and index building): one connection rule.
RAY_EXTRA = "pip install 'msfkit[ray]'"
RETRIES = 3  # times Ray reruns a piece whose worker died
CONNECT_SECONDS = 5  # to wait for the head node's port to answer


def ray_missing(module: str | None = "ray") -> str:
    """The one line `--engine ray` says when Ray cannot be imported."""
    return f"--engine ray needs Ray ({module or 'ray'} is missing): {RAY_EXTRA}"


def connect(address: str | None) -> Any:
    """The `ray` module, connected to the cluster at `address` (None: RAY_ADDRESS or a new local one;
    "auto": the one running here) unless this process is connected already."""
    try:
        import ray  # optional extra: ray
    except ImportError as e:
        raise MsfkitError(ray_missing(e.name)) from None
    if not ray.is_initialized():
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = address or "a new local cluster"
            raise MsfkitError(f"cannot start or reach Ray at {where}: {str(e).splitlines()[0]}") from None
    return ray


def _check_reachable(address: str | None) -> None:
    """One line at once for a HOST:PORT nobody answers on (Ray itself retries for minutes)."""
    if address is None or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise MsfkitError(f"Ray address {address!r}: expected auto or HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as e:
        raise MsfkitError(f"cannot reach the Ray cluster at {address} ({e.strerror or e})") from None
