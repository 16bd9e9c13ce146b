"""The embedding store (DESIGN.md "Embedding store"): float32 `.npy` shards beside parquet metadata.

    STORE/
      manifest.json          format_version, model (name, revision, fingerprint, config), dim, dtype,
                             normalized, source_root, counts, shards, and how the run was made
      emb/00000.npy          (rows, dim) float32, rows in the order of meta/00000.parquet
      meta/00000.parquet     one row per embedded image: path (relative to source_root, '/'-separated),
                             label (first sub-folder of an input folder, or null), width, height, bytes, mtime
      errors/00000.parquet   path, reason: the files of shard 00000 that could not be embedded
      errors.parquet         every error of the store in one table, written when a run completes

Every file is written under a temporary name and renamed into place. A shard is committed when its
meta file appears, which is renamed last: a run killed at any moment leaves whole shards only, and
the next run redoes the one it was writing. `msfkit embed --shard i/n` writes the store
`STORE/part-0000i-of-0000n`; a folder of such parts opens as one store, in part order.

    store = open_store("store")          # or open_store(["a", "b"]), or a folder of --shard parts
    store.vectors                        # (N, D) float32 (memory-mapped when the store has one shard)
    for start, block in store.iter_batches(65536): ...
    store.meta, store.errors             # pandas DataFrames, rows aligned with the vectors
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ERRORS = "errors.parquet"
META_COLUMNS = ("path", "label", "width", "height", "bytes", "mtime")
ERROR_COLUMNS = ("path", "reason")
PART_NAME = re.compile(r"^part-(\d+)-of-(\d+)$")
# The manifest keys that say what the vectors are; timestamps and run settings stay out of the hash.
_HASHED_KEYS = ("format_version", "model", "dim", "dtype", "normalized", "source_root", "counts", "shards")


def shard_name(k: int) -> str:
    """Zero-padded file stem of shard `k`."""
    return f"{k:05d}"


def part_name(index: int, count: int) -> str:
    """Sub-folder name of the store written by `--shard index/count`."""
    return f"part-{index:05d}-of-{count:05d}"


# -- writing -----------------------------------------------------------------------------------


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of the store at `root`, or None when there is none."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MsfkitError(f"{path}: unreadable manifest ({e})") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise MsfkitError(f"{path}: store format_version {version!r}; this msfkit reads {FORMAT_VERSION}")
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically."""
    text = json.dumps(manifest, indent=1, default=str) + "\n"
    atomic_write(Path(root) / MANIFEST, lambda p: p.write_text(text))


def write_shard(
    root: Path,
    k: int,
    vectors: np.ndarray,
    meta: dict[str, Sequence[Any]],
    errors: Sequence[tuple[str, str]],
) -> None:
    """Write shard `k` (vectors, their metadata, the shard's errors); meta goes last and commits it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, name = Path(root), shard_name(k)
    if len(vectors) != len(meta["path"]):
        raise ValueError(f"shard {name}: {len(vectors)} vectors but {len(meta['path'])} metadata rows")
    for sub in ("emb", "meta", "errors"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    atomic_write(root / "emb" / f"{name}.npy", lambda p: _save_npy(p, vectors))
    err = pa.table(
        {
            "path": pa.array([p for p, _ in errors], pa.string()),
            "reason": pa.array([r for _, r in errors], pa.string()),
        }
    )
    atomic_write(root / "errors" / f"{name}.parquet", lambda p: pq.write_table(err, p))
    table = pa.table(
        {
            "path": pa.array(meta["path"], pa.string()),
            "label": pa.array(meta["label"], pa.string()),
            "width": pa.array(meta["width"], pa.int32()),
            "height": pa.array(meta["height"], pa.int32()),
            "bytes": pa.array(meta["bytes"], pa.int64()),
            "mtime": pa.array(meta["mtime"], pa.float64()),
        }
    )
    atomic_write(root / "meta" / f"{name}.parquet", lambda p: pq.write_table(table, p))


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


def merge_errors(root: Path, shards: Sequence[int]) -> None:
    """Write errors.parquet: the error parts of `shards`, in shard order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    tables = [pq.read_table(root / "errors" / f"{shard_name(k)}.parquet") for k in shards]
    empty = pa.table({c: pa.array([], pa.string()) for c in ERROR_COLUMNS})
    table = pa.concat_tables([empty, *tables])
    atomic_write(root / ERRORS, lambda p: pq.write_table(table, p))


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


# -- reading -----------------------------------------------------------------------------------


@dataclass
class _Part:
    """One store folder and the shards committed in it."""

    root: Path
    manifest: dict[str, Any]
    shards: list[dict[str, Any]]  # {"name", "rows", "failed"} in row order

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))


class Store:
    """One embedding store, or several read as one (rows in the order the stores were given)."""

    def __init__(self, parts: list[_Part]) -> None:
        if not parts:
            raise MsfkitError("no embedding store given")
        first = parts[0]
        for other in parts[1:]:
            for key in ("dim", "dtype", "normalized"):
                if other.manifest.get(key) != first.manifest.get(key):
                    raise MsfkitError(
                        f"stores {first.root} and {other.root} differ in {key}; they cannot be read as one"
                    )
            if other.manifest["model"].get("fingerprint") != first.manifest["model"].get("fingerprint"):
                raise MsfkitError(
                    f"stores {first.root} and {other.root} were made with different models; "
                    "they cannot be read as one"
                )
        self.parts = parts

    # manifest-level facts
    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest; for several stores, the first one's with counts, shards and parts combined."""
        if len(self.parts) == 1:
            return self.parts[0].manifest
        merged = dict(self.parts[0].manifest)
        merged["source_root"] = self.source_root
        merged["counts"] = {
            "embedded": sum(s["rows"] for p in self.parts for s in p.shards),
            "failed": sum(s["failed"] for p in self.parts for s in p.shards),
        }
        merged["shards"] = [{"part": i, **s} for i, p in enumerate(self.parts) for s in p.shards]
        merged["parts"] = [str(p.root) for p in self.parts]
        merged["complete"] = self.complete
        return merged

    @property
    def dim(self) -> int:
        return int(self.parts[0].manifest["dim"])

    @property
    def model(self) -> dict[str, Any]:
        """{"name" (loadable by msfkit.load, or None), "revision", "fingerprint", "config"}."""
        return self.parts[0].manifest["model"]

    @property
    def normalized(self) -> bool:
        return bool(self.parts[0].manifest["normalized"])

    @property
    def source_root(self) -> Path | None:
        """The folder the metadata paths are relative to; None when several stores disagree."""
        roots = {p.manifest.get("source_root") for p in self.parts}
        return Path(roots.pop()) if len(roots) == 1 and None not in roots else None

    @property
    def complete(self) -> bool:
        """False while (or after being killed while) a run was writing a store."""
        return all(p.complete for p in self.parts)

    @property
    def manifest_hash(self) -> str:
        """A hash of what the vectors are (model, dims, sources, shards), not of when they were written."""
        h = hashlib.sha256()
        for part in self.parts:
            m = dict(part.manifest, shards=part.shards)
            m["counts"] = {
                "embedded": sum(s["rows"] for s in part.shards),
                "failed": sum(s["failed"] for s in part.shards),
            }
            h.update(json.dumps({k: m.get(k) for k in _HASHED_KEYS}, sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]

    def __len__(self) -> int:
        return sum(s["rows"] for p in self.parts for s in p.shards)

    def __repr__(self) -> str:
        where = self.parts[0].root if len(self.parts) == 1 else f"{len(self.parts)} stores"
        return f"Store({where}, {len(self)} x {self.dim}, model {self.model.get('name')})"

    # vectors
    def shard_vectors(self) -> list[np.ndarray]:
        """One read-only memory-mapped (rows, D) array per shard, in row order."""
        return [self._load(p.root, s) for p in self.parts for s in p.shards]

    @property
    def vectors(self) -> np.ndarray:
        """All vectors as one (N, D) float32 array: memory-mapped for one shard, else read into memory."""
        arrays = self.shard_vectors()
        if len(arrays) == 1:
            return arrays[0]
        if not arrays:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(arrays)

    def iter_batches(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, (<= rows, D) array) blocks in order; memory stays at about one block."""
        if rows < 1:
            raise ValueError("rows must be >= 1")
        pending: list[np.ndarray] = []
        pending_rows, start = 0, 0
        for array in self.shard_vectors():
            offset = 0
            while offset < len(array):
                take = min(rows - pending_rows, len(array) - offset)
                pending.append(array[offset : offset + take])
                pending_rows, offset = pending_rows + take, offset + take
                if pending_rows == rows:
                    yield start, np.concatenate(pending) if len(pending) > 1 else np.asarray(pending[0])
                    start, pending, pending_rows = start + rows, [], 0
        if pending_rows:
            yield start, np.concatenate(pending) if len(pending) > 1 else np.asarray(pending[0])

    # tables
    @property
    def meta(self):
        """pandas DataFrame, one row per vector: path, label, width, height, bytes, mtime."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [
            pq.read_table(p.root / "meta" / f"{s['name']}.parquet") for p in self.parts for s in p.shards
        ]
        df = pa.concat_tables([_empty_meta(), *tables]).to_pandas()
        df["label"] = df["label"].astype(object).where(df["label"].notna(), None)  # None, not NaN
        return df

    @property
    def errors(self):
        """pandas DataFrame of the files that could not be embedded: path, reason."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = []
        for p in self.parts:
            if p.complete and (p.root / ERRORS).is_file():
                tables.append(pq.read_table(p.root / ERRORS))
            else:
                tables += [pq.read_table(p.root / "errors" / f"{s['name']}.parquet") for s in p.shards]
        empty = pa.table({c: pa.array([], pa.string()) for c in ERROR_COLUMNS})
        return pa.concat_tables([empty, *tables]).to_pandas()

    def absolute_paths(self) -> list[Path]:
        """The source file of each row (metadata paths joined to their own store's source root)."""
        out = []
        for p in self.parts:
            root = Path(p.manifest["source_root"])
            for s in p.shards:
                out += [root / rel for rel in _read_column(p.root / "meta" / f"{s['name']}.parquet", "path")]
        return out

    def _load(self, root: Path, shard: dict[str, Any]) -> np.ndarray:
        path = root / "emb" / f"{shard['name']}.npy"
        if shard["rows"] == 0:  # numpy cannot memory-map an empty array
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise MsfkitError(f"{path}: unreadable shard ({e})") from None
        if array.shape != (shard["rows"], self.dim):
            raise MsfkitError(f"{path}: shape {array.shape}, expected ({shard['rows']}, {self.dim})")
        return array


def open_store(path: str | os.PathLike | Sequence[str | os.PathLike]) -> Store:
    """Open a store folder, several (read as one), or a folder holding the parts of `--shard i/n` runs."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    parts: list[_Part] = []
    for p in paths:
        parts += _open_parts(Path(p))
    return Store(parts)


def is_store(path: str | os.PathLike) -> bool:
    """Whether `open_store` reads `path`: a store folder, or a folder of stores (e.g. `--shard` parts)."""
    path = Path(path)
    return path.is_dir() and ((path / MANIFEST).is_file() or bool(_sub_stores(path)))


def _sub_stores(root: Path) -> list[Path]:
    return sorted((d for d in root.iterdir() if d.is_dir() and (d / MANIFEST).is_file()), key=_part_key)


def _open_parts(root: Path) -> list[_Part]:
    if not root.is_dir():
        raise MsfkitError(f"{root}: no such store folder")
    manifest = read_manifest(root)
    if manifest is not None:
        return [_open_one(root, manifest)]
    subs = _sub_stores(root)
    if not subs:
        raise MsfkitError(f"{root}: not an embedding store (no {MANIFEST}, and no sub-folder has one)")
    parts = [_open_one(d, read_manifest(d)) for d in subs]
    counts = {p.manifest["part"]["count"] for p in parts if p.manifest.get("part")}
    if len(counts) > 1:
        raise MsfkitError(f"{root}: holds parts of different --shard splits ({sorted(counts)})")
    if counts:
        (count,) = counts
        have = {p.manifest["part"]["index"] for p in parts if p.manifest.get("part")}
        missing = sorted(set(range(count)) - have)
        if missing:
            listed = ", ".join(str(i) for i in missing[:10])
            raise MsfkitError(
                f"{root}: parts {listed} of {count} are missing (embed them with --shard i/{count})"
            )
    return parts


def _open_one(root: Path, manifest: dict[str, Any]) -> _Part:
    if manifest.get("complete"):
        shards = manifest["shards"]
    else:  # killed mid-run: the committed shards are the ones on disk
        shards = [shard_info(root, k) for k in committed_shards(root)]
    return _Part(root, manifest, shards)


def _part_key(d: Path) -> tuple[int, str]:
    m = PART_NAME.match(d.name)
    return (int(m[1]) if m else -1, d.name)


def _read_column(path: Path, column: str) -> list[Any]:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=[column])[column].to_pylist()


def _empty_meta():
    import pyarrow as pa

    types = [pa.string(), pa.string(), pa.int32(), pa.int32(), pa.int64(), pa.float64()]
    return pa.table({c: pa.array([], t) for c, t in zip(META_COLUMNS, types, strict=True)})
