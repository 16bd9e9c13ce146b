"""A store's shard files: which shards are committed, their parquet schemas, their footers.

meta/00000.parquet     one row per embedded image: path (relative to source_root, '/'-separated),
                       label (first sub-folder of an input folder, or null), width, height, bytes,
                       mtime, mtime_ns (null in shards written before it was added); the
                       footer's `msfkit.generation` counts the shard's replacements
errors/00000.parquet   path, reason
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msfkit.data.paths import check_row_names
from msfkit.models.errors import MsfkitError
from msfkit.store.format import ShardEntry, shard_name

META_COLUMNS = ("path", "label", "width", "height", "bytes", "mtime", "mtime_ns")
GENERATION = b"msfkit.generation"  # meta footer key: how many times the shard's rows were replaced
ERROR_COLUMNS = ("path", "reason")


@dataclass(frozen=True)
class FileFacts:
    """What a meta row records about an embedded file, besides its path and label."""

    width: int  # full-resolution size as displayed (after EXIF orientation)
    height: int
    bytes: int  # size on disk (0 for an image that is not a file)
    mtime: float  # seconds since the epoch
    mtime_ns: int | None  # the same in integer nanoseconds; None in shards written before it


FACT_COLUMNS = ("width", "height", "bytes", "mtime", "mtime_ns")  # FileFacts' fields, in META_COLUMNS
FEW_CELLS = 100_000  # `cells` reads up to this many one by one, then the whole column as one array


def committed_shards(root: Path) -> list[int]:
    """Indices of the shards whose metadata file exists (so whose vectors and errors exist too)."""
    meta = Path(root) / "meta"
    if not meta.is_dir():
        return []
    return sorted(int(p.stem) for p in meta.glob("*.parquet") if p.stem.isdigit())


def shard_info(root: Path, k: int) -> ShardEntry:
    """The entry of committed shard `k`, read from the parquet footers (its generation too, so the
    manifest hash changes with replaced vectors)."""
    name = shard_name(k)
    meta = pq.read_metadata(Path(root) / "meta" / f"{name}.parquet")
    failed = pq.read_metadata(Path(root) / "errors" / f"{name}.parquet").num_rows
    generation = int((meta.metadata or {}).get(GENERATION, b"0"))
    return ShardEntry(name, meta.num_rows, failed, generation)


def cells(table: pa.Table, name: str, rows: Sequence[int]) -> list[Any]:
    """The cells of column `name` at `rows`, as Python values, without pandas: any numpy conversion of
    pyarrow's imports it (0.2 s), so up to FEW_CELLS rows are read one by one (about 1 us each)."""
    column = table.column(name)
    if len(rows) <= FEW_CELLS:
        return [column[int(r)].as_py() for r in rows]
    return column.to_numpy()[np.asarray(rows, dtype=np.int64)].tolist()


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """One local Parquet file as a table: every Parquet file msfkit wrote (shards, rows.parquet) is
    read here. `pq.ParquetFile`, not `pq.read_table`: the latter goes through pyarrow.dataset, which
    imports pandas, 0.2 s at the start of every command that reads one file."""
    with pq.ParquetFile(path) as f:
        return f.read(columns=columns)


def shard_paths(root: Path, k: int) -> list[str]:
    """Every source path shard `k` accounts for: embedded and failed."""
    name = shard_name(k)
    paths = read_parquet(Path(root) / "meta" / f"{name}.parquet", ["path"])["path"].to_pylist()
    failed = read_parquet(Path(root) / "errors" / f"{name}.parquet", ["path"])["path"].to_pylist()
    return paths + failed


def read_meta(root: Path, k: int):
    """The meta table of committed shard `k`, in today's schema (see `conform_meta`)."""
    table = conform_meta(read_parquet(Path(root) / "meta" / f"{shard_name(k)}.parquet"))
    check_row_names(table["path"].to_pylist(), root)  # a path that would leave the source root: edited
    return table


def check_shards(root: Path, shards: list[ShardEntry]) -> list[ShardEntry]:
    """A complete manifest's shard list, checked against each shard's own metadata (a footer read
    each): a missing, damaged or short shard is one line, never an index built on a broken store."""
    for s in shards:
        try:
            on_disk = shard_info(root, int(s.name))
        except Exception as e:  # a missing or damaged parquet file; pyarrow raises several types
            raise MsfkitError(f"{root}: shard {s.name} is missing or damaged ({type(e).__name__})") from None
        if on_disk.rows != s.rows:
            raise MsfkitError(
                f"{root}: meta/{s.name}.parquet has {on_disk.rows} rows, the manifest says {s.rows}; "
                "the store is damaged, embed it again"
            )
    return shards


def meta_schema():
    """The arrow schema of meta/NNNNN.parquet."""
    types = [pa.string(), pa.string(), pa.int32(), pa.int32(), pa.int64(), pa.float64(), pa.int64()]
    return pa.schema(list(zip(META_COLUMNS, types, strict=True)))


def conform_meta(table):
    """A meta table in today's schema: a shard written before `mtime_ns` existed gets it as nulls."""
    if "mtime_ns" not in table.column_names:
        table = table.append_column("mtime_ns", pa.nulls(len(table), pa.int64()))
    return table.select(list(META_COLUMNS)).replace_schema_metadata(None).cast(meta_schema())


def error_schema():
    """The arrow schema of errors/NNNNN.parquet and errors.parquet."""
    return pa.schema([(c, pa.string()) for c in ERROR_COLUMNS])
