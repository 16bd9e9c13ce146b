"""Writing an embedding store: shards committed atomically, the store lock, the final manifest.

Every file is written under a temporary name and renamed into place, meta last: a run killed at
any moment leaves whole shards only, and the next run redoes the one it was writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write
from msfkit.store.format import (
    ERRORS,
    STORE_ENTRIES,
    Manifest,
    now,
    read_manifest,
    shard_name,
    write_manifest,
)
from msfkit.store.shards import (
    META_COLUMNS,
    committed_shards,
    error_schema,
    meta_schema,
    read_parquet,
    shard_info,
)

_LOCKS: dict[Path, int] = {}  # store folder -> descriptor holding its lock


def write_shard(
    root: Path,
    k: int,
    vectors: np.ndarray,
    meta: dict[str, Sequence[Any]],
    errors: Sequence[tuple[str, str]],
) -> None:
    """Write shard `k` (vectors, their metadata, the shard's errors); meta goes last and commits it."""
    root, name = Path(root), shard_name(k)
    bad = ~np.isfinite(vectors).all(axis=1) if len(vectors) else np.zeros(0, bool)
    if bad.any():
        raise MsfkitError(
            f"{root}: the model gave non-finite vectors (NaN or inf) for {int(bad.sum())} of {len(vectors)} "
            f"images (e.g. {meta['path'][int(np.argmax(bad))]}); check its weights and config.json"
        )
    if len(vectors) != len(meta["path"]):
        raise ValueError(f"shard {name}: {len(vectors)} vectors but {len(meta['path'])} metadata rows")
    for sub in ("emb", "meta", "errors"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    atomic_write(root / "emb" / f"{name}.npy", lambda p: save_npy(p, vectors))
    err = pa.table({"path": [p for p, _ in errors], "reason": [r for _, r in errors]}, schema=error_schema())
    atomic_write(root / "errors" / f"{name}.parquet", lambda p: pq.write_table(err, p))
    unknown = [None] * len(vectors)  # mtime_ns may be left out: null, as in shards written before it
    table = pa.table({c: list(meta.get(c, unknown)) for c in META_COLUMNS}, schema=meta_schema())
    atomic_write(root / "meta" / f"{name}.parquet", lambda p: pq.write_table(table, p))


def merge_errors(root: Path, shards: Sequence[int]) -> None:
    """Write errors.parquet: the error parts of `shards`, in shard order."""
    root = Path(root)
    tables = [read_parquet(root / "errors" / f"{shard_name(k)}.parquet") for k in shards]
    table = pa.concat_tables([error_schema().empty_table(), *tables])
    atomic_write(root / ERRORS, lambda p: pq.write_table(table, p))


def save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def lock(out: Path) -> None:
    """Hold an exclusive lock on the store folder until `unlock`, so a second run on it stops at once."""
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise MsfkitError(
            f"{out} is being written by another msfkit embed; let it finish, or use another -o"
        ) from None
    _LOCKS[out] = fd


def unlock(out: Path) -> None:
    fd = _LOCKS.pop(out, None)
    if fd is not None:
        os.close(fd)


def clear(out: Path) -> None:
    """Empty the (locked) store folder for a fresh store; the folder itself stays: it carries the lock.

    Only what a store holds is removed; a folder holding anything else is refused untouched."""
    foreign = sorted(c.name for c in out.iterdir() if c.name not in STORE_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise MsfkitError(f"{out}: holds files that are not a store's ({shown}); left untouched")
    for child in out.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def release_inherited_locks() -> None:
    """In a forked child (a decoding worker): close the copies of the parent's lock descriptors, so
    that the lock goes with the parent (a killed run's orphaned workers do not keep it)."""
    for fd in _LOCKS.values():
        with contextlib.suppress(OSError):
            os.close(fd)


def finish(out: Path) -> Manifest:
    """Write errors.parquet and the final manifest (counts, shard list); the store is complete."""
    shards = committed_shards(out)
    merge_errors(out, shards)
    manifest = read_manifest(out)
    manifest.shards = [shard_info(out, k) for k in shards]
    manifest.counts = (sum(s.rows for s in manifest.shards), sum(s.failed for s in manifest.shards))
    manifest.complete, manifest.updated = True, now()
    write_manifest(out, manifest)
    return manifest
