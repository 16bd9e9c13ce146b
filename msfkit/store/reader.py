"""Reading embedding stores: `Store` (vectors, metadata, errors) and `open_store`.

store = open_store("store")          # or open_store(["a", "b"]), or a folder of --shard parts
store = open_store("s3://bucket/store")   # a store at a URL: its committed shards (store/remote.py)
store.vectors                        # (N, D) float32, memory-mapped
store.meta, store.errors             # pandas DataFrames, rows aligned with the vectors
store.take(rows), store.iter_batches(65536)     # some rows; blocks, in order (no joined copy)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from msfkit.data.paths import row_paths
from msfkit.data.storage import is_remote, is_url, local_path
from msfkit.models.errors import MsfkitError
from msfkit.models.identity import check_same_model
from msfkit.store.cache import joined_vectors
from msfkit.store.export import export_store
from msfkit.store.format import ERRORS, EmbedSettings, ModelRecord, ShardEntry, parts_hash
from msfkit.store.parts import Part, has_parts, open_parts
from msfkit.store.remote import is_remote_store, open_remote
from msfkit.store.shards import error_schema, meta_schema, read_meta, read_parquet


class Store:
    """One embedding store, or several read as one (rows in the order the stores were given)."""

    def __init__(self, parts: list[Part]) -> None:
        if not parts:
            raise MsfkitError("no embedding store given")
        first = parts[0]
        for other in parts[1:]:
            for key in ("dim", "dtype", "normalized"):
                if getattr(other.manifest, key) != getattr(first.manifest, key):
                    raise MsfkitError(
                        f"stores {first.root} and {other.root} differ in {key}; they cannot be read as one"
                    )
            check_same_model(
                first.manifest.model,
                other.manifest.model,
                f"the store {first.root}",
                f"the store {other.root}",
                "they cannot be read as one",
            )
        self.parts = parts
        self.run = None  # the EmbedSummary of the run that wrote it, when `msfkit.embed` returns it

    # manifest-level facts
    @property
    def settings(self) -> EmbedSettings:
        """How the (first store's) vectors were computed; queries are embedded the same way."""
        return self.parts[0].manifest.settings or EmbedSettings()

    @property
    def dim(self) -> int:
        return self.parts[0].manifest.dim

    @property
    def model(self) -> ModelRecord:
        """Which model made the vectors: name (loadable by msfkit.load, or None), revision,
        fingerprint, config."""
        return self.parts[0].manifest.model

    @property
    def normalized(self) -> bool:
        return self.parts[0].manifest.normalized

    @property
    def source_root(self) -> Path | str | None:
        """The folder the metadata paths are relative to (a URL, as text, for images in object
        storage); None when several stores disagree."""
        roots = {p.manifest.source_root for p in self.parts}
        if len(roots) != 1 or None in roots:
            return None
        root = roots.pop()
        return root if is_url(root) else Path(root)

    @property
    def complete(self) -> bool:
        """False while (or after being killed while) a run was writing a store."""
        return all(p.complete for p in self.parts)

    @property
    def manifest_hash(self) -> str:
        """A hash of what the vectors are (model, dims, sources, shards), not of when they were written."""
        return parts_hash([(p.manifest, p.shards) for p in self.parts])

    def grew_from(self, manifest_hash: str, rows: int | None = None) -> bool:
        """Whether this (single-part) store had `manifest_hash` then, or only gained shards since (not
        once a row it had was replaced). `rows`, the rows it held then (index.json records them),
        picks the one prefix of shards to hash; without it every prefix is tried."""
        m, shards = self.parts[0].manifest, self.parts[0].shards
        ends = np.cumsum([0, *(s.rows for s in shards)])
        prefixes = [n for n in range(len(shards), -1, -1) if rows is None or ends[n] == rows]
        return any(parts_hash([(m, shards[:n])]) == manifest_hash for n in prefixes)

    def __len__(self) -> int:
        return sum(s.rows for p in self.parts for s in p.shards)

    def __repr__(self) -> str:
        first = self.parts[0].url or self.parts[0].root
        where = first if len(self.parts) == 1 else f"{len(self.parts)} stores"
        return f"Store({where}, {len(self)} x {self.dim}, model {self.model.name})"

    # vectors
    def shard_vectors(self) -> list[np.ndarray]:
        """One read-only memory-mapped (rows, D) array per shard, in row order."""
        return [self._load(p.root, s) for p in self.parts for s in p.shards]

    @cached_property
    def vectors(self) -> np.ndarray:
        """All vectors as one read-only memory-mapped (N, D) float32 array, however many shards: one
        shard is mapped in place, several are joined once into the msfkit cache (`msfkit.store.cache`)."""
        arrays = self.shard_vectors()
        if len(arrays) == 1:
            return arrays[0]
        if not arrays:
            return np.zeros((0, self.dim), dtype=np.float32)
        return joined_vectors(arrays, self.manifest_hash, (len(self), self.dim))

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

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of the sorted `rows`, read shard by shard (only those rows are read)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows[0] < 0 or rows[-1] >= len(self)):
            raise MsfkitError(f"{self}: rows {rows[0]}..{rows[-1]} are outside 0..{len(self) - 1}")
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        start, i = 0, 0
        for array in self.shard_vectors():
            end = start + len(array)
            j = int(np.searchsorted(rows, end))
            out[i:j] = array[rows[i:j] - start]
            i, start = j, end
        return out

    def export(self, out: str | os.PathLike) -> Path:
        """The store as one .parquet, .csv or .npy table (see `msfkit.store.export`)."""
        return export_store(self, out)

    def split(self) -> list[Store]:
        """One single-part Store per part (a store folder of its own), in row order."""
        return [Store([part]) for part in self.parts]

    # tables
    @cached_property
    def meta(self):
        """pandas DataFrame, one row per vector: path, label, width, height, bytes, mtime, mtime_ns."""
        tables = [read_meta(p.root, int(s.name)) for p in self.parts for s in p.shards]
        df = pa.concat_tables([meta_schema().empty_table(), *tables]).to_pandas()
        df["label"] = df["label"].astype(object).where(df["label"].notna(), None)  # None, not NaN
        df["mtime_ns"] = df["mtime_ns"].astype("Int64")  # null in shards written before the column
        return df

    @property
    def errors(self):
        """pandas DataFrame of the files that could not be embedded: path, reason."""
        tables = []
        for p in self.parts:
            if p.complete and (p.root / ERRORS).is_file():
                tables.append(read_parquet(p.root / ERRORS))
            else:
                tables += [read_parquet(p.root / "errors" / f"{s.name}.parquet") for s in p.shards]
        return pa.concat_tables([error_schema().empty_table(), *tables]).to_pandas()

    def absolute_paths(self) -> list[Path]:
        """The source file of each row (metadata paths joined to their own store's source root)."""
        out = []
        for p in self.parts:
            for s in p.shards:
                meta = read_parquet(p.root / "meta" / f"{s.name}.parquet", ["path"])
                out += row_paths(p.manifest.source_root, meta["path"].to_pylist(), p.root)
        return out

    def _load(self, root: Path, shard: ShardEntry) -> np.ndarray:
        path = root / "emb" / f"{shard.name}.npy"
        if shard.rows == 0:  # numpy cannot memory-map an empty array
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise MsfkitError(f"{path}: unreadable shard ({e})") from None
        if array.shape != (shard.rows, self.dim):
            raise MsfkitError(f"{path}: shape {array.shape}, expected ({shard.rows}, {self.dim})")
        return array


def open_store(path: str | os.PathLike | Sequence[str | os.PathLike]) -> Store:
    """Open a store folder, several (read as one), or a folder holding the parts of `--shard i/n` runs;
    each may be a URL (read through a local copy of its committed state, `msfkit.store.remote`)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    return Store([part for p in paths for part in _open_parts(p)])


def is_store(path: str | os.PathLike) -> bool:
    """Whether `open_store` reads `path`: a store folder, or a folder of stores (e.g. `--shard` parts)."""
    return is_remote_store(os.fspath(path)) if is_remote(path) else has_parts(Path(local_path(path)))


def _open_parts(path: str | os.PathLike) -> list[Part]:
    if not is_remote(path):
        return open_parts(Path(local_path(path)))
    url = os.fspath(path).rstrip("/")
    copy = open_remote(url)
    parts = open_parts(copy)
    for part in parts:  # the store itself, or its --shard parts (sub-folders named as the URL's)
        part.url = url if part.root == copy else f"{url}/{part.root.name}"
    return parts
