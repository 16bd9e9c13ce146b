"""A store as one table other tools read: parquet (a list<float32> vector column), CSV, or .npy.

    store.export("embeddings.parquet")   # the meta columns (path, label, ..., mtime_ns), vector
    store.export("embeddings.csv")       # filenames, embedding_0 ..., labels (lightly's layout)
    store.export("vectors.npy")          # the (N, D) float32 array alone, rows in store order

Rows are in store order, the order of `store.meta` and `store.vectors`. The file is written under
a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msfkit.data.csv_writer import row_writer
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write
from msfkit.store.shards import meta_schema

FORMATS = (".parquet", ".csv", ".npy")
BLOCK_ROWS = 65536


def export_store(store, out: str | os.PathLike) -> Path:
    """Write `store` to `out`, in the format its suffix names (.parquet, .csv, .npy)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        what = suffix or "a file without a suffix"
        raise MsfkitError(f"{out}: cannot write {what}; use {', '.join(FORMATS)}")
    if out.is_dir():
        raise MsfkitError(f"{out}: is a folder; give a file name ending in {suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write = {".parquet": _parquet, ".csv": _csv, ".npy": _npy}[suffix]
    return atomic_write(out, lambda tmp: write(store, tmp))


def _parquet(store, tmp: Path) -> None:
    meta = store.meta
    with pq.ParquetWriter(tmp, _schema(store.dim)) as writer:
        for start, block in store.iter_batches(BLOCK_ROWS):
            rows = meta.iloc[start : start + len(block)]
            columns = {c: pa.array(rows[c].tolist()) for c in meta.columns}
            flat = pa.array(np.ascontiguousarray(block, dtype=np.float32).ravel())
            columns["vector"] = pa.FixedSizeListArray.from_arrays(flat, store.dim)
            writer.write_table(pa.table(columns, schema=_schema(store.dim)))


def _schema(dim: int):
    return meta_schema().append(pa.field("vector", pa.list_(pa.float32(), dim)))


def _csv(store, tmp: Path) -> None:
    meta = store.meta
    header = ["filenames", *(f"embedding_{i}" for i in range(store.dim)), "labels"]
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        write_row = row_writer(f)  # the one CSV writer: a file name that starts like a formula is not run
        write_row(header)
        for start, block in store.iter_batches(BLOCK_ROWS):
            paths = meta["path"].iloc[start : start + len(block)]
            labels = meta["label"].iloc[start : start + len(block)]
            for path, label, row in zip(paths, labels, block, strict=True):
                write_row([path, *row.tolist(), label or ""])


def _npy(store, tmp: Path) -> None:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(store), store.dim))
    for start, block in store.iter_batches(BLOCK_ROWS):
        out[start : start + len(block)] = block
    out.flush()
    del out
