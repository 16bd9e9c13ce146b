"""Images held in tables: Parquet files and Hugging Face `datasets` folders (`save_to_disk`).

    table_rows("photos.parquet", TableOptions())   # [("/data/photos.parquet/image/000000000", "cat"), ...]
    split_cell("/data/photos.parquet/image/000000000")   # (Path("/data/photos.parquet"), "image", 0)
    read_cell(Path("/data/photos.parquet"), "image", 0)  # (the image's encoded bytes, mtime)

A table's rows become members of it, named as an archive's are: `TABLE/COLUMN/ROW`, the row number
zero-padded to nine digits so that names sort in table order. A cell of the image column holds the
encoded file (binary), a `{"bytes": ..., "path": ...}` struct as `datasets.Image` writes it (the
bytes when present, else the path), or a path (text). A path is relative to the table's folder and
stays inside it: an absolute one, or one that climbs out (`..`, or a symlink), is refused when the
cell is read, so the row becomes an error row of the run, never a file read from elsewhere.

The image column is `TableOptions.image_column`, or else the one column of images (a struct with a
`bytes` field, or binary). The label column is `label_column`, or else `label` when there is one;
an integer label with class names in the table's `datasets` features (`ClassLabel`) reads as its name.
A `datasets` folder is one saved `Dataset` (`state.json` lists its `.arrow` files) or a
`DatasetDict` (`dataset_dict.json` lists its splits, each such a folder).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from msfkit.models.errors import MsfkitError

TABLE_SUFFIXES = (".parquet", ".arrow")
ROW_DIGITS = 9


class CellError(MsfkitError):
    """A table cell that holds no image msfkit may read; the message is a short reason."""


@dataclass(frozen=True)
class TableOptions:
    """Which columns of a table hold the images and the labels (None: found as the module says)."""

    image_column: str | None = None
    label_column: str | None = None


def is_table(path: str | os.PathLike) -> bool:
    """Whether `path` is a table of images: a .parquet or .arrow file, or a `datasets` folder."""
    p = Path(path)
    if p.is_dir():
        return (p / "state.json").is_file() or (p / "dataset_dict.json").is_file()
    return p.suffix.lower() in TABLE_SUFFIXES and p.is_file()


def table_files(path: str | os.PathLike) -> list[Path]:
    """The table files of `path`: itself for a file; a `datasets` folder's data files, in order."""
    p = Path(path)
    if not p.is_dir():
        return [p]
    if (p / "dataset_dict.json").is_file():
        splits = _json(p / "dataset_dict.json").get("splits")
        if not isinstance(splits, list) or not all(isinstance(s, str) and _plain(s) for s in splits):
            raise MsfkitError(f"{p / 'dataset_dict.json'}: its 'splits' is not a list of folder names")
        return [f for split in splits for f in table_files(p / split)]
    files = _json(p / "state.json").get("_data_files")
    names = [f.get("filename") for f in files] if isinstance(files, list) else None
    if not names or not all(isinstance(n, str) and _plain(n) for n in names):
        raise MsfkitError(f"{p / 'state.json'}: its '_data_files' is not a list of file names in the folder")
    return [p / n for n in names]


def image_column(table: str | os.PathLike, opts: TableOptions) -> str | None:
    """The image column of the table file (see the module docstring); None when it has none."""
    schema = _schema(str(table), _mtime(table))
    if opts.image_column is not None:
        if opts.image_column not in schema.names:
            raise MsfkitError(f"{table}: no column {opts.image_column!r} (has {', '.join(schema.names)})")
        return opts.image_column
    images = [f.name for f in schema if _holds_images(f.type)]
    if len(images) > 1:
        raise MsfkitError(f"{table}: several columns hold images ({', '.join(images)}); name one")
    return images[0] if images else None


def table_rows(path: str | os.PathLike, opts: TableOptions) -> list[tuple[str, str | None]]:
    """(cell name `TABLE/COLUMN/ROW`, label) of every row of the table(s) at `path`, in order."""
    out = []
    for table in table_files(path):
        column = image_column(table, opts)
        if column is None:
            raise MsfkitError(f"{table}: no column holds images; name it (--image-column)")
        if "/" in column or not _supported(_schema(str(table), _mtime(table)).field(column).type):
            raise MsfkitError(
                f"{table}: column {column!r} holds no images (encoded bytes, {{bytes, path}} structs, paths)"
            )
        labels = _labels(table, opts)
        out += [(f"{table}/{column}/{row:0{ROW_DIGITS}d}", label) for row, label in enumerate(labels)]
    return out


def split_cell(path: str | os.PathLike) -> tuple[Path, str, int] | None:
    """(table, column, row) when `path` names a cell of a table file on disk, else None."""
    text = os.fspath(path)
    head, _, row = text.rpartition("/")
    table, _, column = head.rpartition("/")
    if not (row.isdigit() and len(row) == ROW_DIGITS and column and table.lower().endswith(TABLE_SUFFIXES)):
        return None
    return (Path(table), column, int(row)) if os.path.isfile(table) else None


def read_cell(table: Path, column: str, row: int) -> tuple[bytes, float]:
    """(the image's encoded bytes, the mtime of the file they came from) of one cell; `CellError`
    with a short reason when the cell is empty, out of range or names a path outside the folder."""
    mtime = _mtime(table)
    value = _cell(str(table), mtime, column, row)
    if isinstance(value, dict):
        value = value.get("bytes") if value.get("bytes") is not None else value.get("path")
    if isinstance(value, bytes):
        return value, mtime
    if isinstance(value, str):
        return _read_beside(table, value)
    raise CellError("empty image cell")


def _read_beside(table: Path, name: str) -> tuple[bytes, float]:
    """The bytes and mtime of the file `name` (relative, '/'-separated) in the table's folder."""
    if not name or "\0" in name or os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise CellError(f"unsafe path in the table {table.name}: {name!r} leaves its folder")
    folder = os.path.realpath(table.parent)
    target = os.path.realpath(os.path.join(folder, name))
    if os.path.commonpath([folder, target]) != folder:
        raise CellError(f"unsafe path in the table {table.name}: {name!r} resolves outside its folder")
    try:
        with open(target, "rb") as f:
            return f.read(), os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        raise CellError(f"no such file beside the table: {name}") from None
    except OSError as e:
        raise CellError(f"unreadable: {e.strerror or e}") from None


def _cell(table: str, mtime: float, column: str, row: int) -> Any:
    """One cell's value (a struct as a dict), read from the row group (Parquet) or map (Arrow) holding it."""
    if table.lower().endswith(".arrow"):
        data = _arrow(table, mtime)
        if column not in data.column_names or not 0 <= row < data.num_rows:
            raise CellError(f"no row {row} in column {column!r} of the table")
        return data.column(column)[row].as_py()
    starts = _row_groups(table, mtime)
    group = next((g for g in range(len(starts) - 1) if starts[g] <= row < starts[g + 1]), None)
    if group is None or column not in _schema(table, mtime).names:
        raise CellError(f"no row {row} in column {column!r} of the table")
    return _group(table, mtime, column, group)[row - starts[group]].as_py()


@lru_cache(maxsize=2)  # rows are read in order: the group being read, and maybe the one before
def _group(table: str, mtime: float, column: str, group: int):
    import pyarrow.parquet as pq

    return pq.ParquetFile(table).read_row_group(group, columns=[column]).column(0)


@lru_cache(maxsize=16)
def _row_groups(table: str, mtime: float) -> list[int]:
    """The first row of each row group, and the row count last."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(table).metadata
    starts = [0]
    for g in range(meta.num_row_groups):
        starts.append(starts[-1] + meta.row_group(g).num_rows)
    return starts


@lru_cache(maxsize=4)
def _arrow(table: str, mtime: float):
    """An .arrow file (IPC stream, as `datasets` writes, or IPC file) memory-mapped: no copy of its bytes."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.memory_map(table)).read_all()
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(table)).read_all()


@lru_cache(maxsize=16)
def _schema(table: str, mtime: float):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return _arrow(table, mtime).schema if table.lower().endswith(".arrow") else pq.read_schema(table)
    except (OSError, pa.ArrowException) as e:
        raise MsfkitError(f"{table}: unreadable table ({_first_line(e)})") from None


def _labels(table: Path, opts: TableOptions) -> list[str | None]:
    """One label (or None) per row: the label column's values, class indices read as their names."""
    import pyarrow.parquet as pq

    schema = _schema(str(table), _mtime(table))
    column = opts.label_column or ("label" if "label" in schema.names else None)
    rows = None if table.suffix.lower() == ".arrow" else _row_groups(str(table), _mtime(table))[-1]
    if column is None:
        return [None] * (rows if rows is not None else _arrow(str(table), _mtime(table)).num_rows)
    if column not in schema.names:
        raise MsfkitError(f"{table}: no label column {column!r} (has {', '.join(schema.names)})")
    if rows is None:
        values = _arrow(str(table), _mtime(table)).column(column).to_pylist()
    else:
        values = pq.read_table(table, columns=[column]).column(0).to_pylist()
    names = _class_names(schema, column)
    return [_label(v, names) for v in values]


def _label(value: Any, names: list[str] | None) -> str | None:
    if value is None or value == "":
        return None
    if names is not None and isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return str(value)


def _class_names(schema, column: str) -> list[str] | None:
    """The `ClassLabel` names `datasets` records for `column` in the table's metadata, if any."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        feature = json.loads(raw)["info"]["features"][column] if raw else None
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    names = feature.get("names") if isinstance(feature, dict) else None
    return names if isinstance(names, list) and all(isinstance(n, str) for n in names) else None


def _holds_images(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or _is_image_struct(kind)


def _supported(kind) -> bool:
    import pyarrow as pa

    return _holds_images(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_image_struct(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_struct(kind) and kind.get_field_index("bytes") != -1


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MsfkitError(f"{path}: unreadable ({_first_line(e)})") from None
    if not isinstance(value, dict):
        raise MsfkitError(f"{path}: not a JSON object")
    return value


def _plain(name: str) -> bool:
    """A file or folder name right inside a folder: no separator, not `.` or `..`."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def _mtime(table: str | os.PathLike) -> float:
    return os.stat(table).st_mtime


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
