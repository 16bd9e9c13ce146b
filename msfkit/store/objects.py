"""Committing a store's shards where there is no rename: the shard's objects first, its commit record last.

On the local disk a shard is committed by renaming its meta file into place. An object store (S3,
GCS, the Hub, `memory://`) has no rename, but it has whole objects: a PUT is seen entirely or not
at all. So a shard is written as whole objects, then committed by one more object that lists
them, with their sizes:

    STORE/commits/00003.json   {"name": "00003", "rows": 12, "failed": 1,
                                "objects": {"emb/00003.npy": 6272, "errors/00003.parquet": 811,
                                            "meta/00003.parquet": 2904}}

    entry = {"name": "00003", "rows": 12, "failed": 1}        # the manifest's shard entry
    commit_shard(store, entry, {"emb/00003.npy": npy_bytes(vectors), ...})
    read_commits(store)   # {3: record, ...}: the shards a reader may use, and nothing else

A run killed at any moment leaves whole committed shards plus, at most, objects of shards without
a record: readers never see those (they list `commits/`, not `emb/`), and the next run writes them
again over the same names. The record is the manifest's shard entry plus `objects`. Replacing a
committed shard's rows writes its objects under new names (say `emb/00003.g2.npy`), then a new
record: the switch is that one PUT, and a reader never pairs new vectors with old metadata. Every
function takes a `msfkit.data.storage.Location`, so the same calls write a local store
(each object renamed into place) and a remote one.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from msfkit.data.storage import Location
from msfkit.models.errors import MsfkitError

COMMITS = "commits"
_RECORD = re.compile(r"^(\d+)\.json$")
_OBJECT = re.compile(r"^(?!.*(?:^|/)\.\.?(?:/|$))[\w.-]+(?:/[\w.-]+)*$")  # relative; no '.' or '..' part


def put_object(store: Location, name: str, data: bytes) -> int:
    """Write `data` as the object `name` ('/'-separated, under `store`), whole; its size."""
    store.child(name).write_bytes(data)
    return len(data)


def read_object(store: Location, name: str) -> bytes:
    """The bytes of the object `name` under `store`; a missing one is FileNotFoundError."""
    return store.child(name).read_bytes()


def commit_shard(store: Location, entry: dict[str, Any], objects: dict[str, bytes]) -> dict[str, Any]:
    """Put every object of the shard, then its commit record: `entry` (the manifest's shard entry:
    name, rows, failed, and whatever else it carries) with the objects' sizes. The record goes last:
    it is what makes the shard exist. Returns the record."""
    sizes = {name: put_object(store, name, data) for name, data in objects.items()}
    record = {**entry, "objects": sizes}
    write_commit(store, int(entry["name"]), record)
    return record


def write_commit(store: Location, k: int, record: dict[str, Any]) -> None:
    """Write shard `k`'s commit record (one whole object)."""
    store.child(COMMITS, f"{k:05d}.json").write_bytes(json.dumps(record, sort_keys=True).encode())


def read_commits(store: Location) -> dict[int, dict[str, Any]]:
    """The commit record of every committed shard of `store`, by shard number (none: {})."""
    records = {}
    for name in store.child(COMMITS).listdir():
        m = _RECORD.match(name)
        if m is None:
            continue  # not a record (a local temporary name, say)
        where = store.child(COMMITS, name)
        try:
            record = json.loads(where.read_bytes())
        except FileNotFoundError:
            continue  # removed since the listing: a store being replaced
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise MsfkitError(f"{where.url}: unreadable commit record; the store is damaged") from None
        if not _well_formed(record, int(m[1])):
            raise MsfkitError(f"{where.url}: not a commit record msfkit wrote; the store is damaged")
        records[int(m[1])] = record
    return records


def check_commit(store: Location, record: dict[str, Any]) -> None:
    """Every object the record lists is there with its recorded size; else one line (damaged)."""
    for name, size in record["objects"].items():
        try:
            found = store.child(name).size()
        except FileNotFoundError:
            found = None
        if found != size:
            held = "is missing" if found is None else f"has {found} bytes, its commit record says {size}"
            raise MsfkitError(f"{store.child(name).url} {held}; the store is damaged, embed it again")


def npy_bytes(array: np.ndarray) -> bytes:
    """`array` as the bytes of a .npy file."""
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def parquet_bytes(table) -> bytes:
    """A pyarrow table as the bytes of a .parquet file."""
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _well_formed(record: Any, k: int) -> bool:
    if not isinstance(record, dict) or record.get("name") != f"{k:05d}":
        return False
    objects = record.get("objects")
    if not isinstance(objects, dict) or not all(isinstance(s, int) for s in objects.values()):
        return False
    inside = all(_OBJECT.match(name) for name in objects)  # a record never names a path outside the store
    return inside and all(isinstance(record.get(key), int) for key in ("rows", "failed"))
