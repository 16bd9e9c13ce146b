"""faiss operations shared by building, tuning and searching: devices, threads, search parameters."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import faiss
import numpy as np

from msfkit.store.format import check_finite

FEW_QUERIES = 16  # fewer queries than this are searched on one thread


def to_device(index: Any) -> Any:
    """The index on the GPU when faiss sees one and has a GPU version of the type; else unchanged."""
    if faiss.get_num_gpus() == 0:
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index, ngpu=1)
    except RuntimeError:  # no GPU implementation (HNSW): stay on the CPU
        return index


def to_cpu(index: Any) -> Any:
    """A CPU copy of a GPU index (what faiss can write); a CPU index unchanged."""
    return faiss.index_gpu_to_cpu(index) if _on_gpu(index) else index


def _on_gpu(index: Any) -> bool:
    return type(faiss.downcast_index(index)).__name__.startswith("Gpu")


def search_index(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss search, on one thread for a few queries.

    faiss opens OpenMP regions even for a single query (IndexIDMap translates ids in one); on a busy
    machine waiting for the other threads costs milliseconds, far more than the search itself.
    """
    if len(queries) >= FEW_QUERIES:
        return index.search(queries, k)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, k)
    finally:
        faiss.omp_set_num_threads(threads)


def set_search_params(index: Any, params: dict[str, int]) -> None:
    """Apply nprobe / efSearch to a CPU or GPU index."""
    space = faiss.GpuParameterSpace() if _on_gpu(index) else faiss.ParameterSpace()
    for name, value in params.items():
        space.set_index_parameter(index, name, value)


def add_rows(
    index: Any, blocks: Iterable[tuple[int, np.ndarray]], skip: np.ndarray, where: object, offset: int = 0
) -> None:
    """Add (first row, vectors) `blocks` as ids `offset + row`, normalised, leaving out the sorted ids
    `skip`; a non-finite vector is one error naming its row and `where` it came from."""
    for start, block in blocks:
        check_finite(block, start, where)
        ids = np.arange(offset + start, offset + start + len(block))
        keep = ~np.isin(ids, skip)
        index.add_with_ids(normalized(block[keep]), ids[keep])


def normalized(vectors: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of `vectors`, every row scaled to unit length (zero rows stay zero)."""
    x = np.array(vectors, dtype=np.float32, order="C", copy=True, ndmin=2)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """The process's standard output (file descriptor 1) sent to /dev/null for the block.

    faiss's on-disk inverted lists print progress with C `printf` (where the lists were found,
    file resizes), which would land in `msfkit search --json` output. Open and build only, never
    while another thread may be printing."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # C's buffered output goes where it was written: nowhere
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
