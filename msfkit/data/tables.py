"""Images held in tables: Parquet files (on disk or in object storage) and Hugging Face `datasets`
folders (`save_to_disk`, on disk).

    table_rows("/data/photos.parquet", TableOptions())
        # [("image/000000000", "cat"), ...]: (cell name in the table, label), in table order
    table_rows("s3://bucket/photos.parquet", TableOptions(image_column="jpg", label_column="class"))

A table's rows become members of it, named as an archive's are: `TABLE/COLUMN/ROW` is a cell's
full name, which `msfkit.data.cells` reads back. Listing reads the table's footer and its
label column only, never the images.

The image column is `TableOptions.image_column`, or else the one column of images (a struct with a
`bytes` field, as `datasets.Image` writes, or binary); a column of paths must be named. The label
column is `label_column`, or else `label` when there is one; an integer label with class names in
the table's `datasets` features (`ClassLabel`) reads as its name. A `datasets` folder is one saved
`Dataset` (`state.json` lists its `.arrow` files) or a `DatasetDict` (`dataset_dict.json` lists its
splits, each such a folder).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from msfkit.data.cells import TABLE_SUFFIXES, arrow_table, cell_name, parquet_file, table_schema, table_time
from msfkit.data.storage import is_url
from msfkit.models.errors import MsfkitError


@dataclass(frozen=True)
class TableOptions:
    """Which columns of a table hold the images and the labels (None: found as the module says)."""

    image_column: str | None = None
    label_column: str | None = None


def is_table(path: str | os.PathLike) -> bool:
    """Whether `path` is a table of images: a .parquet or .arrow file (or URL), or a `datasets` folder."""
    text = os.fspath(path)
    if is_url(text):
        return text.lower().endswith(TABLE_SUFFIXES)
    p = Path(text)
    if p.is_dir():
        return (p / "state.json").is_file() or (p / "dataset_dict.json").is_file()
    return p.suffix.lower() in TABLE_SUFFIXES and p.is_file()


def table_files(path: str | os.PathLike) -> list[str]:
    """The table files of `path`: itself for a file or URL; a `datasets` folder's data files, in order."""
    text = os.fspath(path)
    p = Path(text)
    if is_url(text) or not p.is_dir():
        return [text]
    if (p / "dataset_dict.json").is_file():
        splits = _json(p / "dataset_dict.json").get("splits")
        if not isinstance(splits, list) or not all(isinstance(s, str) and _plain(s) for s in splits):
            raise MsfkitError(f"{p / 'dataset_dict.json'}: its 'splits' is not a list of folder names")
        return [f for split in splits for f in table_files(p / split)]
    files = _json(p / "state.json").get("_data_files")
    names = [f.get("filename") for f in files] if isinstance(files, list) else None
    if not names or not all(isinstance(n, str) and _plain(n) for n in names):
        raise MsfkitError(f"{p / 'state.json'}: its '_data_files' is not a list of file names in the folder")
    return [str(p / n) for n in names]


def image_column(table: str, opts: TableOptions) -> str | None:
    """The image column of one table file (see the module docstring); None when it has none."""
    schema = _schema(table)
    if opts.image_column is not None:
        if opts.image_column not in schema.names:
            raise MsfkitError(f"{table}: no column {opts.image_column!r} (has {', '.join(schema.names)})")
        return opts.image_column
    images = [f.name for f in schema if _holds_images(f.type)]
    if len(images) > 1:
        raise MsfkitError(f"{table}: several columns hold images ({', '.join(images)}); name one")
    return images[0] if images else None


def holds_images(path: str | os.PathLike, opts: TableOptions) -> bool:
    """Whether listing reads `path` as a table of images: a `datasets` folder or an .arrow file
    always; a Parquet file when its image column is named or found (else it may be a table of
    paths, which `msfkit.data.inputs` reads)."""
    text = os.fspath(path)
    if not is_table(text):
        return False
    return not text.lower().endswith(".parquet") or image_column(text, opts) is not None


def table_rows(path: str | os.PathLike, opts: TableOptions) -> list[tuple[str, str | None]]:
    """(cell name relative to `path`, label) of every row of the table(s) at `path`, in order, as
    archive members are named relative to their archive: `COLUMN/ROW` for a table file,
    `DATA_FILE/COLUMN/ROW` in a `datasets` folder; `f"{path}/{name}"` is the cell's full name."""
    base = os.fspath(path).rstrip("/")
    out = []
    for table in table_files(base):
        column = image_column(table, opts)
        if column is None:
            raise MsfkitError(f"{table}: no column holds images; name it (--image-column)")
        if "/" in column or not _supported(_schema(table).field(column).type):
            raise MsfkitError(
                f"{table}: column {column!r} holds no images (encoded bytes, {{bytes, path}} structs, paths)"
            )
        inner = table[len(base) + 1 :]  # the data file's name in a datasets folder; "" for the file itself
        for row, label in enumerate(_labels(table, opts)):
            out.append((cell_name(inner, column, row).lstrip("/"), label))
    return out


def _labels(table: str, opts: TableOptions) -> list[str | None]:
    """One label (or None) per row: the label column's values, class indices read as their names."""
    schema, stamp = _schema(table), table_time(table)
    column = opts.label_column or ("label" if "label" in schema.names else None)
    if column is not None and column not in schema.names:
        raise MsfkitError(f"{table}: no label column {column!r} (has {', '.join(schema.names)})")
    if table.lower().endswith(".arrow"):
        data = arrow_table(table, stamp)
        values = data.column(column).to_pylist() if column else [None] * data.num_rows
    elif column is None:
        values = [None] * parquet_file(table, stamp).metadata.num_rows
    else:
        values = parquet_file(table, stamp).read(columns=[column]).column(0).to_pylist()
    names = _class_names(schema, column) if column else None
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


def _schema(table: str):
    try:
        stamp = table_time(table)
    except FileNotFoundError:
        raise MsfkitError(f"{table}: no such table") from None
    return table_schema(table, stamp)


def _holds_images(kind) -> bool:
    is_struct = pa.types.is_struct(kind) and kind.get_field_index("bytes") != -1
    return is_struct or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


def _supported(kind) -> bool:
    return _holds_images(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MsfkitError(f"{path}: unreadable ({type(e).__name__})") from None
    if not isinstance(value, dict):
        raise MsfkitError(f"{path}: not a JSON object")
    return value


def _plain(name: str) -> bool:
    """A file or folder name right inside a folder: no separator, not `.` or `..`."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")
