"""What every curation question starts from: an index (or a store, searched exactly) and each image's
k nearest other images, streamed block by block.

    with opened("index") as index:                      # an index folder or an embedding store
        for start, sims, rows, valid in neighbour_blocks(index, 10, "index"):
            ...                                          # (block, k) similarities and neighbour rows

Memory is the index and one block of vectors: the vectors are read back from the index's stores one
block at a time, never all at once. An image's own row is never among its neighbours, even where an
exact copy of it ties with it for first place.

An approximate index (HNSW, IVF) is searched WIDER times wider than its tuned parameters while it is
open here: its parameters are tuned for recall@10 on average, and where a search misses an image's
neighbourhood, the image reads as an outlier or its label as wrong. Curation asks about every image.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from msfkit.index.build import build_index
from msfkit.index.faiss_ops import set_search_params
from msfkit.index.folder import IndexFolder, open_folder
from msfkit.models.errors import MsfkitError
from msfkit.store import is_store

BLOCK_ROWS = 8192
WIDER = 4  # efSearch / nprobe times the index's own (faiss caps nprobe at the number of lists)
Source = IndexFolder | str | os.PathLike


def source_name(source: Source) -> str:
    """How messages name `source`: the folder the user gave (never a temporary index)."""
    return str(source.path if isinstance(source, IndexFolder) else source)


@contextmanager
def opened(source: Source) -> Iterator[IndexFolder]:
    """`source` as an open index folder: an `IndexFolder` as it is, an index folder opened, an embedding
    store through a temporary exact (flat) index, removed on leaving."""
    if isinstance(source, IndexFolder):
        with _searched_wider(source):
            yield source
    elif not is_store(source):
        index = open_folder(source)
        with _searched_wider(index):
            yield index
    else:
        with tempfile.TemporaryDirectory(prefix="msfkit-curate-") as tmp:
            build_index(source, Path(tmp) / "index", kind="flat", recall=1.0)
            yield open_folder(Path(tmp) / "index")


@contextmanager
def _searched_wider(index: IndexFolder) -> Iterator[None]:
    """The index searched WIDER times wider for the block, its own parameters back after."""
    params = index.info["search_params"]
    set_search_params(index.index, {name: value * WIDER for name, value in params.items()})
    try:
        yield
    finally:
        set_search_params(index.index, params)


def neighbour_count(index: IndexFolder, k: int, name: str) -> int:
    """`k`, or fewer where the index holds fewer other images; a user error for k < 1 or < 2 images."""
    if k < 1:
        raise MsfkitError(f"k must be >= 1, not {k}")
    if len(index) < 2:
        raise MsfkitError(f"{name}: holds {len(index)} image(s); curation needs at least 2")
    return min(k, len(index) - 1)


def neighbour_blocks(
    index: IndexFolder, k: int, name: str, progress: bool = False, desc: str = "neighbours"
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(first row, similarities, neighbour rows, valid) for each block of indexed vectors, each array
    (block, k): the k nearest other images, best first; `valid` is False where an approximate index
    found fewer (those similarities are NaN, those rows -1). `name` names the source in errors."""
    k = neighbour_count(index, k, name)
    with tqdm(total=len(index), unit="img", desc=desc, disable=not progress, leave=False) as bar:
        for start, block in index.store.iter_batches(BLOCK_ROWS):
            yield start, *_others(index, block, np.arange(start, start + len(block)), k)
            bar.update(len(block))


def _others(index: IndexFolder, vectors: np.ndarray, own: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """(similarities, rows, valid), each (len(own), k): the k nearest images to `vectors` other than
    their own rows `own`, best first; NaN, -1 and False past what the index found."""
    sims, rows = index.search_vectors(vectors, k + 1)
    keep = (rows >= 0) & (rows != own[:, None])
    first = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the kept ones, in rank order
    valid = np.take_along_axis(keep, first, axis=1)
    sims = np.where(valid, np.take_along_axis(sims, first, axis=1), np.nan).astype(np.float32)
    rows = np.where(valid, np.take_along_axis(rows, first, axis=1), -1).astype(np.int64)
    return sims, rows, valid


def neighbours_of(source: Source, rows, k: int) -> pd.DataFrame:
    """The k nearest other images of each of `rows` (in the order given): one line per pair, with
    row, rank (from 1), neighbour, path, label and score (cosine similarity), for a gallery."""
    rows = np.asarray(rows, dtype=np.int64)
    with opened(source) as index:
        k = neighbour_count(index, k, source_name(source))
        order = np.argsort(rows, kind="stable")
        vectors = np.empty((len(rows), index.dim), dtype=np.float32)
        vectors[order] = index.store.take(rows[order])
        sims, found, valid = _others(index, vectors, rows, k)
        which, rank = np.nonzero(valid)
        neighbour = found[which, rank]
        return pd.DataFrame(
            {
                "row": rows[which],
                "rank": rank + 1,
                "neighbour": neighbour,
                "path": index.absolute_paths(neighbour),
                "label": index.rows["label"].to_numpy()[neighbour],
                "score": sims[which, rank].astype(float),
            }
        )
