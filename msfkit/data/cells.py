"""Reading one image cell of a table (see `msfkit.data.tables` for how tables are listed).

    split_cell("/data/photos.parquet/image/000000042")   # ("/data/photos.parquet", "image", 42)
    read_cell("/data/photos.parquet", "image", 42)       # (the image's encoded bytes, mtime)
    read_cell("s3://bucket/photos.parquet", "image", 42) # the same from object storage

A cell holds the encoded file (binary), a `{"bytes": ..., "path": ...}` struct as `datasets.Image`
writes it (the bytes when present, else the path), or a path (text). A path is relative to the
table's folder and stays inside it: an unsafe name (`msfkit.data.paths.name_problem`: absolute, a
`..` part), or on disk a name that a symlink takes out of the folder, is refused with a short
reason (`CellError`), so the row becomes an error row of the run, never a file read from elsewhere.

Parquet is read one row group at a time (a remote one by ranged reads: the table is never copied
whole); an `.arrow` file (as `datasets.save_to_disk` writes) is memory-mapped, on a local disk only.
A remote table is opened with fsspec's configured options (`fsspec.config.conf`, `FSSPEC_<PROTOCOL>`
variables) and its time is read once per process.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from msfkit.data.paths import name_problem
from msfkit.data.storage import Location, is_url, locate
from msfkit.models.errors import MsfkitError

TABLE_SUFFIXES = (".parquet", ".arrow")
ROW_DIGITS = 9  # rows are named zero-padded, so that names sort in table order


class CellError(MsfkitError):
    """A table cell that holds no image msfkit may read; the message is a short reason."""


def cell_name(table: str, column: str, row: int) -> str:
    """The name of a cell, as listing gives it: `TABLE/COLUMN/ROW`."""
    return f"{table}/{column}/{row:0{ROW_DIGITS}d}"


def split_cell(path: str | os.PathLike) -> tuple[str, str, int] | None:
    """(table, column, row) when `path` is a cell's name (a local table must exist), else None."""
    text = os.fspath(path)
    head, _, row = text.rpartition("/")
    table, _, column = head.rpartition("/")
    if not (row.isdigit() and len(row) == ROW_DIGITS and column and table.lower().endswith(TABLE_SUFFIXES)):
        return None
    return (table, column, int(row)) if is_url(table) or os.path.isfile(table) else None


def read_cell(table: str | os.PathLike, column: str, row: int) -> tuple[bytes, float]:
    """(the image's encoded bytes, the time of the file they came from) of one cell; `CellError` with
    a short reason when the cell is empty, out of range or names a path outside the folder."""
    table = os.fspath(table)
    stamp = table_time(table)
    value = _cell(table, stamp, column, row)
    if isinstance(value, dict):
        value = value.get("bytes") if value.get("bytes") is not None else value.get("path")
    if isinstance(value, bytes):
        return value, stamp
    if isinstance(value, str):
        return _read_beside(table, value)
    raise CellError("empty image cell")


def table_schema(table: str, stamp: float):
    """The table's arrow schema (with its metadata); an unreadable table is one line."""
    try:
        return (
            arrow_table(table, stamp).schema if _is_arrow(table) else parquet_file(table, stamp).schema_arrow
        )
    except (OSError, pa.ArrowException) as e:
        raise MsfkitError(f"{table}: unreadable table ({_first_line(e)})") from None


def table_time(table: str) -> float:
    """When the table was last written: the cache key of everything read from it."""
    return _remote_time(table) if is_url(table) else os.stat(table).st_mtime


def parquet_file(table: str, stamp: float):
    """The table's `pyarrow.parquet.ParquetFile`, opened once per process and version (a forked
    decoding worker opens its own: a remote file's connection does not survive a fork)."""
    return _parquet(table, stamp, os.getpid())


def _read_beside(table: str, name: str) -> tuple[bytes, float]:
    """The bytes and time of the file `name` (relative, '/'-separated) in the table's folder."""
    base = table.rsplit("/", 1)[0] if is_url(table) else os.path.dirname(table)
    problem = name_problem(name)
    if problem is not None:
        raise CellError(f"unsafe path in the table {os.path.basename(table)}: {problem} ({name!r})")
    if is_url(table):
        where = _location(base, os.getpid()).child(name)
        try:
            return where.read_bytes(), where.modified()
        except FileNotFoundError:
            raise CellError(f"no such file beside the table: {name}") from None
    folder = os.path.realpath(base)
    target = os.path.realpath(os.path.join(folder, name))
    if os.path.commonpath([folder, target]) != folder:
        raise CellError(
            f"unsafe path in the table {os.path.basename(table)}: {name!r} resolves outside its folder"
        )
    try:
        with open(target, "rb") as f:
            return f.read(), os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        raise CellError(f"no such file beside the table: {name}") from None
    except OSError as e:
        raise CellError(f"unreadable: {e.strerror or e}") from None


def _cell(table: str, stamp: float, column: str, row: int) -> Any:
    """One cell's value (a struct as a dict), from the row group (Parquet) or map (Arrow) holding it."""
    if _is_arrow(table):
        data = arrow_table(table, stamp)
        if column not in data.column_names or not 0 <= row < data.num_rows:
            raise CellError(f"no row {row} in column {column!r} of the table")
        return data.column(column)[row].as_py()
    starts = _row_starts(table, stamp)
    group = next((g for g in range(len(starts) - 1) if starts[g] <= row < starts[g + 1]), None)
    if group is None or column not in parquet_file(table, stamp).schema_arrow.names:
        raise CellError(f"no row {row} in column {column!r} of the table")
    return _group(table, stamp, column, group)[row - starts[group]].as_py()


@lru_cache(maxsize=2)  # rows are read in order: the group being read, and maybe the one before
def _group(table: str, stamp: float, column: str, group: int):
    return parquet_file(table, stamp).read_row_group(group, columns=[column]).column(0)


@lru_cache(maxsize=16)
def _row_starts(table: str, stamp: float) -> list[int]:
    """The first row of each row group, and the row count last."""
    meta = parquet_file(table, stamp).metadata
    starts = [0]
    for g in range(meta.num_row_groups):
        starts.append(starts[-1] + meta.row_group(g).num_rows)
    return starts


@lru_cache(maxsize=8)
def _parquet(table: str, stamp: float, pid: int):
    return pq.ParquetFile(_location(table, pid).open() if is_url(table) else table)


@lru_cache(maxsize=4)
def arrow_table(table: str, stamp: float):
    """A local .arrow file (an IPC stream, as `datasets` writes, or an IPC file), memory-mapped."""
    if is_url(table):
        raise MsfkitError(f"{table}: .arrow tables are read from a local disk; remote tables are Parquet")
    try:
        return pa.ipc.open_stream(pa.memory_map(table)).read_all()
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(table)).read_all()


@lru_cache(maxsize=64)
def _location(url: str, pid: int) -> Location:
    """One filesystem per remote table or folder and process (fsspec's configured options)."""
    return locate(url)


@lru_cache(maxsize=64)
def _remote_time(url: str) -> float:
    return _location(url, os.getpid()).modified()


def _is_arrow(table: str) -> bool:
    return table.lower().endswith(".arrow")


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
