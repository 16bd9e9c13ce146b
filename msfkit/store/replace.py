"""Replacing rows of a committed shard in place: a changed file's new vector keeps its row id.

    replace_rows(root, 3, {"photos/a.jpg": (vector, (width, height, bytes, mtime, mtime_ns))})

The shard's two files are rewritten whole under temporary names, flushed to disk (fsync) and
renamed into place: `emb/NNNNN.npy` first, then `meta/NNNNN.parquet`, whose footer counts the
replacements (`msfkit.generation`, part of the manifest hash, so indexes and caches of the old
vectors see another store). The run has marked the store incomplete and named the shard in its
plan before the first rename, so a kill between the two renames (new vectors, old file facts) is
a store that reads as changed and that the next run finishes: its file facts still differ from
the file, so the file is embedded again and the meta file renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from msfkit.models.errors import MsfkitError
from msfkit.models.files import is_disk_full
from msfkit.store.format import GENERATION, META_COLUMNS, conform_meta, meta_schema, shard_name

FACTS = ("width", "height", "bytes", "mtime", "mtime_ns")  # the meta columns a replacement rewrites


def replace_rows(root: Path, k: int, rows: dict[str, tuple[np.ndarray, tuple[Any, ...]]]) -> None:
    """Give the rows of shard `k` whose paths are the keys of `rows` their new (vector, FACTS)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, name = Path(root), shard_name(k)
    emb, meta_path = root / "emb" / f"{name}.npy", root / "meta" / f"{name}.parquet"
    table = pq.read_table(meta_path)
    generation = int((table.schema.metadata or {}).get(GENERATION, b"0")) + 1
    columns = conform_meta(table).to_pydict()
    vectors = np.array(np.load(emb, allow_pickle=False), dtype=np.float32)  # a copy, not a map
    where = {path: i for i, path in enumerate(columns["path"])}
    missing = sorted(set(rows) - set(where))
    if missing or vectors.shape[0] != len(where):
        raise MsfkitError(f"{root}: shard {name} does not hold {missing[:1] or 'its rows'}; embed it again")
    for path, (vector, facts) in rows.items():
        i = where[path]
        if not np.isfinite(vector).all():
            raise MsfkitError(f"{root}: the model gave a non-finite vector for {path}; check its weights")
        vectors[i] = vector
        for column, value in zip(FACTS, facts, strict=True):
            columns[column][i] = value
    new = pa.table({c: columns[c] for c in META_COLUMNS}, schema=meta_schema())
    new = new.replace_schema_metadata({GENERATION: str(generation).encode()})
    durable_write(emb, lambda f: np.save(f, vectors))
    durable_write(meta_path, lambda f: pq.write_table(new, f))


def durable_write(path: Path, write: Callable[[Any], object]) -> None:
    """`write(file object)` to a temporary name beside `path`, fsync, rename over `path`, fsync
    the folder: after a crash (even of the machine) `path` is the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if is_disk_full(e, path.parent):
            raise MsfkitError(f"disk full: cannot write {path}; free space there and run again") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
