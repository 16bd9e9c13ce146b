"""Putting a store's rows into an index: in streaming batches (`fill`), in pieces written to files
(`fill_pieces`, here or in Ray tasks), and the row table that maps ids back to files.

Rows get the ids `offset + row`: a build starts at 0, adding to an index at its count, so a
vector's id is always its row in the index's row table (rows.parquet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd
from tqdm import tqdm

from msfkit.index.distributed import fill_on_ray
from msfkit.index.faiss_ops import add_rows
from msfkit.index.pieces import PIECE_ROWS, fill_piece, plan_pieces
from msfkit.models.errors import MsfkitError
from msfkit.store import Store

BATCH_ROWS = 65536  # vectors read and added per step while filling


def check_complete(store: Store) -> None:
    """Only a finished embedding run is indexed."""
    if not store.complete:
        raise MsfkitError(
            f"{store}: the embedding run has not finished; run msfkit embed again to complete it"
        )


def fill(index: Any, store: Store, progress: bool, skip: np.ndarray, offset: int = 0) -> None:
    """Add every row of `store` but the sorted ids `skip`, as ids `offset + row`, one batch at a time."""
    with tqdm(total=len(store), unit="vec", desc="indexing", disable=not progress, leave=False) as bar:
        for start, block in store.iter_batches(BATCH_ROWS):
            add_rows(index, [(start, block)], skip, store, offset)
            bar.update(len(block))


def fill_pieces(
    trained: Any,
    store: Store,
    skip: np.ndarray,
    folder: Path,
    *,
    offset: int = 0,
    piece_rows: int = PIECE_ROWS,
    engine: str = "local",
    address: str | None = None,
    progress: bool = False,
) -> list[Path]:
    """Every row of `store` but the ids `skip`, as ids `offset + row`, in copies of the `trained`
    empty index written under `folder`, one file per piece of whole shards; filled here one after
    another (`engine` "local") or in parallel Ray tasks ("ray", on the cluster at `address`)."""
    pieces = plan_pieces(store, piece_rows, offset)
    files = [folder / f"{p.number:05d}.faiss" for p in pieces]
    blob = faiss.serialize_index(trained)
    paths = [str(p.root) for p in store.parts]
    if engine == "ray":
        fill_on_ray(blob, paths, pieces, skip, files, address=address, progress=progress)
        return files
    for piece, file in tqdm(
        list(zip(pieces, files, strict=True)), unit="piece", desc="indexing", disable=not progress
    ):
        fill_piece(blob, paths, piece, skip, str(file))
    return files


def rows_table(store: Store, source_offset: int) -> pd.DataFrame:
    """index row -> (source, path, label) for every vector of `store`, in store order."""
    frames = []
    for i, part in enumerate(store.split()):
        meta = part.meta
        frames.append(
            pd.DataFrame(
                {"source": np.int32(source_offset + i), "path": meta["path"], "label": meta["label"]}
            )
        )
    return pd.concat(frames, ignore_index=True)
