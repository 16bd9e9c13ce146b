"""Replacing rows of a committed shard in place: a changed file's new vector keeps its row id.

    replace_rows(root, 3, {"photos/a.jpg": (vector, FileFacts(width, height, bytes, mtime, mtime_ns))})

The shard's two files are rewritten whole under temporary names, flushed to disk and renamed
into place (`atomic_write(durable=True)`): `emb/NNNNN.npy` first, then `meta/NNNNN.parquet`,
whose footer counts the replacements (`msfkit.generation`, part of the manifest hash, so indexes
and caches of the old vectors see another store). The run has marked the store incomplete and
named the shard in its plan before the first rename, so a kill between the two renames (new
vectors, old file facts) is a store that reads as changed and that the next run finishes: its
file facts still differ from the file, so the file is embedded again and the meta file renamed
into place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write
from msfkit.store.format import shard_name
from msfkit.store.shards import (
    FACT_COLUMNS,
    GENERATION,
    META_COLUMNS,
    FileFacts,
    conform_meta,
    meta_schema,
    read_parquet,
)
from msfkit.store.writer import save_npy


def replace_rows(root: Path, k: int, rows: dict[str, tuple[np.ndarray, FileFacts]]) -> None:
    """Give the rows of shard `k` whose paths are the keys of `rows` their new (vector, file facts)."""
    root, name = Path(root), shard_name(k)
    emb, meta_path = root / "emb" / f"{name}.npy", root / "meta" / f"{name}.parquet"
    table = read_parquet(meta_path)
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
        for column in FACT_COLUMNS:
            columns[column][i] = getattr(facts, column)
    new = pa.table({c: columns[c] for c in META_COLUMNS}, schema=meta_schema())
    new = new.replace_schema_metadata({GENERATION: str(generation).encode()})
    # each flushed to disk before and after its rename: a crash of the machine, too, leaves the
    # old file or the new one
    atomic_write(emb, lambda tmp: save_npy(tmp, vectors), durable=True)
    atomic_write(meta_path, lambda tmp: pq.write_table(new, tmp), durable=True)
