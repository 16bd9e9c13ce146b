"""Filling an on-disk index's pieces in parallel Ray tasks (`msfkit index --engine ray`).

    fill_on_ray(trained_bytes, store_paths, pieces, skip, files, address=None)  # piece files written

The driver trained the index and plans the pieces; each task runs `msfkit.index.pieces.fill_piece`,
the function a local build runs, on one piece and writes it beside the output; the driver merges
them. Workers read the store and write the pieces by path, so on a cluster of several machines
both are on a filesystem they share. A task that fails (a worker killed) is retried by Ray.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from msfkit.cluster import RETRIES, connect
from msfkit.index.pieces import Piece, fill_piece
from msfkit.models.errors import MsfkitError


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
