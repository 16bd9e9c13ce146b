"""The embedding store's format: file names, the manifest and its checks, the shard tables.

This module and its two neighbours (`writer`, `reader`) are the only code that knows the store's
files; docs/formats.md describes every file and field.

    STORE/
      manifest.json          format_version, model (name, revision, fingerprint, config), dim, dtype,
                             normalized, source_root, part, settings, counts, shards, plan, complete
      emb/00000.npy          (rows, dim) float32, rows in the order of meta/00000.parquet
      meta/00000.parquet     one row per embedded image: path (relative to source_root, '/'-separated),
                             label (first sub-folder of an input folder, or null), width, height, bytes,
                             mtime, mtime_ns (null in shards written before it was added); the
                             footer's `msfkit.generation` counts the shard's replacements
      errors/00000.parquet   path, reason: the files of shard 00000 that could not be embedded
      errors.parquet         every error of the store in one table, written when a run completes

A shard is committed when its meta file appears (renamed into place last). `msfkit embed --shard
i/n` writes the store `STORE/part-0000i-of-0000n`; a folder of such parts opens as one store.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from msfkit._version import __version__
from msfkit.data.paths import check_row_names
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ERRORS = "errors.parquet"
META_COLUMNS = ("path", "label", "width", "height", "bytes", "mtime", "mtime_ns")
GENERATION = b"msfkit.generation"  # meta footer key: how many times the shard's rows were replaced
ERROR_COLUMNS = ("path", "reason")
STORE_ENTRIES = frozenset({MANIFEST, ERRORS, "emb", "meta", "errors"})  # everything a store folder holds
PART_NAME = re.compile(r"^part-(\d+)-of-(\d+)$")
# The manifest keys that say what the vectors are; timestamps and run settings stay out of the hash.
HASHED_KEYS = ("format_version", "model", "dim", "dtype", "normalized", "source_root", "counts", "shards")
_REQUIRED = {"model": dict, "dim": int, "dtype": str, "normalized": bool, "counts": dict, "shards": list}


def parts_hash(parts) -> str:
    """The manifest hash of stores given as (manifest, committed shard entries) pairs: HASHED_KEYS,
    with counts and shards taken from the entries, so timestamps and settings do not count."""
    h = hashlib.sha256()
    for manifest, shards in parts:
        counts = {"embedded": sum(s["rows"] for s in shards), "failed": sum(s["failed"] for s in shards)}
        m = dict(manifest, shards=shards, counts=counts)
        h.update(json.dumps({k: m.get(k) for k in HASHED_KEYS}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


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
    """{"name", "rows", "failed"} of committed shard `k`, read from the parquet footers, and
    "generation" once its rows have been replaced (so the manifest hash changes with the vectors)."""
    import pyarrow.parquet as pq

    name = shard_name(k)
    meta = pq.read_metadata(Path(root) / "meta" / f"{name}.parquet")
    failed = pq.read_metadata(Path(root) / "errors" / f"{name}.parquet").num_rows
    info = {"name": name, "rows": meta.num_rows, "failed": failed}
    generation = int((meta.metadata or {}).get(GENERATION, b"0"))
    return {**info, "generation": generation} if generation else info



def shard_paths(root: Path, k: int) -> list[str]:
    """Every source path shard `k` accounts for: embedded and failed."""
    import pyarrow.parquet as pq

    name = shard_name(k)
    paths = pq.read_table(Path(root) / "meta" / f"{name}.parquet", columns=["path"])["path"].to_pylist()
    return (
        paths + pq.read_table(Path(root) / "errors" / f"{name}.parquet", columns=["path"])["path"].to_pylist()
    )



def read_meta(root: Path, k: int):
    """The meta table of committed shard `k`, in today's schema (see `conform_meta`)."""
    import pyarrow.parquet as pq

    table = conform_meta(pq.read_table(Path(root) / "meta" / f"{shard_name(k)}.parquet"))
    check_row_names(table["path"].to_pylist(), root)  # a path that would leave the source root: edited
    return table


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

    types = [pa.string(), pa.string(), pa.int32(), pa.int32(), pa.int64(), pa.float64(), pa.int64()]
    return pa.schema(list(zip(META_COLUMNS, types, strict=True)))


def conform_meta(table):
    """A meta table in today's schema: a shard written before `mtime_ns` existed gets it as nulls."""
    import pyarrow as pa

    if "mtime_ns" not in table.column_names:
        table = table.append_column("mtime_ns", pa.nulls(len(table), pa.int64()))
    return table.select(list(META_COLUMNS)).replace_schema_metadata(None).cast(meta_schema())


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
