"""The embedding store's format: file names, the manifest and its checks, the shard tables.

This module and its two neighbours (`writer`, `reader`) are the only code that knows the store's
files; docs/formats.md describes every file and field.

    STORE/
      manifest.json          format_version, model (name, revision, fingerprint, config), dim, dtype,
                             normalized, source_root, part, settings, counts, shards, plan, complete
      emb/00000.npy          (rows, dim) float32, rows in the order of meta/00000.parquet
      meta/00000.parquet     one row per embedded image: path (relative to source_root, '/'-separated),
                             label (first sub-folder of an input folder, or null), width, height, bytes, mtime
      errors/00000.parquet   path, reason: the files of shard 00000 that could not be embedded
      errors.parquet         every error of the store in one table, written when a run completes

A shard is committed when its meta file appears (renamed into place last). `msfkit embed --shard
i/n` writes the store `STORE/part-0000i-of-0000n`; a folder of such parts opens as one store.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from msfkit._version import __version__
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ERRORS = "errors.parquet"
META_COLUMNS = ("path", "label", "width", "height", "bytes", "mtime")
ERROR_COLUMNS = ("path", "reason")
STORE_ENTRIES = frozenset({MANIFEST, ERRORS, "emb", "meta", "errors"})  # everything a store folder holds
PART_NAME = re.compile(r"^part-(\d+)-of-(\d+)$")
# The manifest keys that say what the vectors are; timestamps and run settings stay out of the hash.
HASHED_KEYS = ("format_version", "model", "dim", "dtype", "normalized", "source_root", "counts", "shards")
_REQUIRED = {"model": dict, "dim": int, "dtype": str, "normalized": bool, "counts": dict, "shards": list}


def shard_name(k: int) -> str:
    """Zero-padded file stem of shard `k`."""
    return f"{k:05d}"


def part_name(index: int, count: int) -> str:
    """Sub-folder name of the store written by `--shard index/count`."""
    return f"part-{index:05d}-of-{count:05d}"


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of the store at `root` (checked), or None when there is none."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MsfkitError(f"{path}: unreadable manifest ({e})") from None
    if not isinstance(manifest, dict):
        raise MsfkitError(f"{path}: a store manifest is a JSON object, not {type(manifest).__name__}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise MsfkitError(f"{path}: store format_version {version!r}; this msfkit reads {FORMAT_VERSION}")
    for key, kind in _REQUIRED.items():
        if not isinstance(manifest.get(key), kind):
            raise MsfkitError(f"{path}: field {key!r} must be a {kind.__name__}, not {manifest.get(key)!r}")
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically."""
    text = json.dumps(manifest, indent=1, default=str) + "\n"
    atomic_write(Path(root) / MANIFEST, lambda p: p.write_text(text))



def new_manifest(
    model: dict[str, Any], dim: int, source_root: Path, part: tuple[int, int] | None, settings: dict[str, Any]
) -> dict[str, Any]:
    """The manifest of an empty store of `dim`-d float32 unit vectors made by `model`
    ({"name", "revision", "fingerprint", "config"}) from the files under `source_root`."""
    return {
        "format_version": FORMAT_VERSION,
        "model": model,
        "dim": dim,
        "dtype": "float32",
        "normalized": True,
        "source_root": str(source_root),
        "part": {"index": part[0], "count": part[1]} if part else None,
        "settings": settings,
        "counts": {"embedded": 0, "failed": 0},
        "shards": [],
        "complete": False,
        "created": now(),
        "msfkit_version": __version__,
    }


def now() -> str:
    """A manifest timestamp: UTC, ISO 8601, seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def committed_shards(root: Path) -> list[int]:
    """Indices of the shards whose metadata file exists (so whose vectors and errors exist too)."""
    meta = Path(root) / "meta"
    if not meta.is_dir():
        return []
    return sorted(int(p.stem) for p in meta.glob("*.parquet") if p.stem.isdigit())



def shard_info(root: Path, k: int) -> dict[str, Any]:
    """{"name", "rows", "failed"} of committed shard `k`, read from the parquet footers."""
    import pyarrow.parquet as pq

    name = shard_name(k)
    rows = pq.read_metadata(Path(root) / "meta" / f"{name}.parquet").num_rows
    failed = pq.read_metadata(Path(root) / "errors" / f"{name}.parquet").num_rows
    return {"name": name, "rows": rows, "failed": failed}



def shard_paths(root: Path, k: int) -> list[str]:
    """Every source path shard `k` accounts for: embedded and failed."""
    import pyarrow.parquet as pq

    name = shard_name(k)
    paths = pq.read_table(Path(root) / "meta" / f"{name}.parquet", columns=["path"])["path"].to_pylist()
    return (
        paths + pq.read_table(Path(root) / "errors" / f"{name}.parquet", columns=["path"])["path"].to_pylist()
    )



def check_shards(root: Path, shards: list) -> list[dict[str, Any]]:
    """A complete manifest's shard list, checked against each shard's own metadata (a footer read
    each): a missing, damaged or short shard is one line, never an index built on a broken store."""
    for s in shards:
        name = s.get("name") if isinstance(s, dict) else None
        if not (isinstance(name, str) and name.isdigit() and isinstance(s.get("rows"), int)):
            raise MsfkitError(f"{root / MANIFEST}: a shard entry needs a digit name and rows, not {s!r}")
        try:
            on_disk = shard_info(root, int(name))
        except Exception as e:  # a missing or damaged parquet file; pyarrow raises several types
            raise MsfkitError(f"{root}: shard {name} is missing or damaged ({type(e).__name__})") from None
        if on_disk["rows"] != s["rows"]:
            raise MsfkitError(
                f"{root}: meta/{name}.parquet has {on_disk['rows']} rows, the manifest says {s['rows']}; "
                "the store is damaged, embed it again"
            )
    return shards


def meta_schema():
    """The arrow schema of meta/NNNNN.parquet."""
    import pyarrow as pa

    types = [pa.string(), pa.string(), pa.int32(), pa.int32(), pa.int64(), pa.float64()]
    return pa.schema(list(zip(META_COLUMNS, types, strict=True)))


def error_schema():
    """The arrow schema of errors/NNNNN.parquet and errors.parquet."""
    import pyarrow as pa

    return pa.schema([(c, pa.string()) for c in ERROR_COLUMNS])


def check_finite(vectors, first_row: int, where: object) -> None:
    """A one-line error naming the rows of `vectors` (numbered from `first_row`) that hold NaN or inf."""
    import numpy as np

    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        shown = ", ".join(str(first_row + int(r)) for r in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise MsfkitError(f"{where}: rows {shown} hold non-finite values (NaN or inf); embed them again")
