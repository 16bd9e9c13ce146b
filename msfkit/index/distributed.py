"""Filling an on-disk index's pieces in parallel Ray tasks (`msfkit index --engine ray`).

    fill_on_ray(trained_bytes, store_paths, pieces, skip, files, address=None)  # piece files written

The driver trained the index and plans the pieces; each task runs `msfkit.index.pieces.fill_piece`,
the function a local build runs, on one piece and writes it beside the output; the driver merges
them. Workers read the store and write the pieces by path, so on a cluster of several machines
both are on a filesystem they share. A task that fails (a worker killed) is retried by Ray.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from msfkit.index.pieces import Piece, fill_piece
from msfkit.models.errors import MsfkitError

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


def fill_on_ray(
    trained: np.ndarray,
    stores: list[str],
    pieces: list[Piece],
    skip: np.ndarray,
    files: list[Path],
    *,
    address: str | None = None,
    progress: bool = False,
) -> None:
    """Fill each piece into its file in a Ray task (one CPU each); returns when all are written."""
    ray = connect(address)
    task = ray.remote(num_cpus=1, max_retries=RETRIES)(fill_piece)
    trained_ref, skip_ref = ray.put(trained), ray.put(skip)
    pending = [
        task.remote(trained_ref, stores, p, skip_ref, str(f)) for p, f in zip(pieces, files, strict=True)
    ]
    with tqdm(total=len(pending), unit="piece", desc="indexing", disable=not progress, leave=False) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done)
            except ray.exceptions.RayTaskError as e:
                for other in pending:
                    ray.cancel(other)
                if isinstance(e.cause, MsfkitError):  # a user error in a worker: its one line
                    raise MsfkitError(str(e.cause)) from None
                raise
            bar.update(len(done))
