"""The index folder's format: `IndexFolder` (a loaded folder) and `open_folder` (read and validate).

    INDEX/
      index.faiss    the faiss index (inner product on L2-normalised vectors); for an index stored on
                     disk, its coarse quantizer and the directory of its inverted lists
      index.ivfdata  only for an index stored on disk: the inverted lists, memory-mapped when opened,
                     so an index larger than RAM is searched with the OS paging in the lists it probes
      index.json     format_version, type + faiss factory string, metric, storage (memory or disk),
                     search parameters (nprobe / efSearch), the model (name, revision, fingerprint),
                     the stores it holds (path, source root, manifest hash, rows), recall@10 on
                     held-out queries and latency, and the byte size of the other files (a file from
                     another index is refused)
      rows.parquet   one row per indexed vector: source (which store), path (relative to that
                     store's source root), label; a vector's faiss id is its row number here (the
                     stores' rows in order), whatever order it was added in

`msfkit.index.writing` writes the folder (under a temporary name, renamed into place);
`msfkit.index.sources` reopens its stores. docs/formats.md has every field.

An index at a URL (`s3://bucket/index`) is the same files as whole objects under that prefix,
index.json put last (`msfkit.index.writing.upload_folder`): without index.json there is no index.
`open_folder` pulls such an index into msfkit's cache (`indexes/`, one folder per URL) and opens the
copy; the copy is fetched again only when the remote index.json differs from the cached one, and
every object's size is checked against the size index.json lists.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msfkit.data.paths import row_paths
from msfkit.data.row_files import RowFile
from msfkit.data.storage import Location, is_url, locate
from msfkit.index.faiss_ops import (
    normalized,
    quiet_stdout,
    search_index,
    set_search_params,
    to_device,
)
from msfkit.index.sources import Source, check_current, joined_or_error, open_sources
from msfkit.models.errors import MsfkitError
from msfkit.sizes import url_cache_dir
from msfkit.store.shards import cells, read_parquet

FORMAT_VERSION = 2  # 2: `storage`, and index.ivfdata for an index stored on disk
INDEX_FILE = "index.faiss"
INFO_FILE = "index.json"
ROWS_FILE = "rows.parquet"
IVFDATA_FILE = "index.ivfdata"
REQUIRED = (INDEX_FILE, INFO_FILE, ROWS_FILE)
FILES = (*REQUIRED, IVFDATA_FILE)
STORAGES = ("memory", "disk")


class IndexFolder:
    """A loaded index folder: the faiss index, its `info` (index.json) and its row -> path table.

    `msfkit.open_index` gives the `msfkit.retrieval.Index` built on it (search by images, dedup).
    """

    def __init__(
        self, path: Path, index: Any, info: dict[str, Any], table: pa.Table, sources: list[Source]
    ) -> None:
        self.path = path  # the folder read (for an index at a URL: its copy in the cache)
        self.url: str | None = None  # the URL it was pulled from, if it was
        self.index = index
        self.info = info
        self.table = table  # rows.parquet as read: source, path, label
        self.sources = sources  # the stores it holds, as opened when the folder was

    @cached_property
    def rows(self):
        """rows.parquet as a pandas DataFrame, made on first use (a search reads its hits' `cells`)."""
        return self.table.to_pandas()

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where}, {self.info['factory']}, {len(self)} x {self.dim})"

    @property
    def where(self) -> str:
        """Where the index is, as the user named it: its URL, or its folder."""
        return self.url or str(self.path)

    @cached_property
    def store(self):
        """The stores this index was built from, read as one; a user error when one moved or changed."""
        return joined_or_error(self.sources)

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def model(self) -> dict[str, Any]:
        """{"name", "revision", "fingerprint", "config"} of the model the indexed vectors came from."""
        return self.info["model"]

    def search_vectors(self, vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the k nearest indexed vectors to each query; rows are -1 past the end."""
        q = normalized(vectors)
        if q.shape[1] != self.dim:
            raise MsfkitError(f"query vectors have dimension {q.shape[1]}; this index holds {self.dim}")
        if not np.isfinite(q).all():
            raise MsfkitError("query vectors hold non-finite values (NaN or inf)")
        return search_index(self.index, q, min(k, len(self)))

    def row_file(self, row: int) -> RowFile:
        """The file of index row `row` as its store recorded it (source root, path, size, mtime): what
        `msfkit.data.row_files.read_row_file` reads only while it is still that file, in its source."""
        facts = self.store.meta.iloc[row]
        (source,), (rel,) = cells(self.table, "source", [row]), cells(self.table, "path", [row])
        mtime_ns = facts.get("mtime_ns")  # null (NaN) in shards written before the column
        return RowFile(
            root=self.info["sources"][source].get("source_root"),
            rel=str(rel),
            bytes=int(facts["bytes"]),
            mtime=float(facts["mtime"]),
            mtime_ns=None if mtime_ns is None or mtime_ns != mtime_ns else int(mtime_ns),
        )

    def absolute_paths(self, rows: np.ndarray | Sequence[int]) -> list[str | None]:
        """The source file of each index row (None for -1); a row path or source root that would leave
        its source (an edited index) is an `UnsafePath` (`msfkit.data.paths.row_paths`)."""
        roots = [s.get("source_root") for s in self.info["sources"]]
        flat = np.asarray(rows, dtype=np.int64).ravel()
        found = flat[flat >= 0]
        hits = iter(zip(cells(self.table, "source", found), cells(self.table, "path", found), strict=True))
        out: list[str | None] = []
        for r in flat:
            src, rel = next(hits) if r >= 0 else (None, None)
            out.append(None if r < 0 else str(row_paths(roots[src], [rel], self.path)[0]))
        return out


def open_folder(path: str | os.PathLike, cls: type[IndexFolder] | None = None) -> IndexFolder:
    """Open an index folder, refusing one with missing, foreign or inconsistent files.

    An index stored on disk is opened memory-mapped: its inverted lists stay in index.ivfdata. An
    index at a URL is pulled into the cache first (see the module docstring)."""
    remote = locate(path) if is_url(path) else None
    if remote is not None and not remote.local:
        copy = pull_folder(remote)
        try:
            opened = open_folder(copy, cls)
        except MsfkitError as e:  # named as the user named it, not by its copy in the cache
            raise type(e)(str(e).replace(str(copy), remote.url)) from None
        opened.url = remote.url
        return opened
    root = Path(remote.path if remote is not None else path)
    info = _read_info(root)
    for name, size in info.get("files", {}).items():
        if name in FILES and name != INFO_FILE and (root / name).stat().st_size != size:
            raise MsfkitError(
                f"{root / name}: does not belong to this index.json (size differs); rebuild the index"
            )
    index = read_faiss(root, info["storage"])
    try:
        rows = read_parquet(root / ROWS_FILE)
        bounds = pc.min_max(rows.column("source")) if "source" in rows.column_names else None
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise MsfkitError(f"{root / ROWS_FILE}: unreadable ({type(e).__name__})") from None
    low, high = (None, None) if bounds is None else (bounds["min"].as_py(), bounds["max"].as_py())
    if bounds is None or (low is not None and (low < 0 or high >= len(info["sources"]))):
        raise MsfkitError(f"{root / ROWS_FILE}: rows point outside the index's {len(info['sources'])} stores")
    if index.ntotal != info.get("count") or index.d != info.get("dim") or rows.num_rows != index.ntotal:
        raise MsfkitError(
            f"{root}: index.faiss holds {index.ntotal} x {index.d}, rows.parquet {rows.num_rows} rows, "
            f"index.json says {info.get('count')} x {info.get('dim')}; the folder is damaged, rebuild it"
        )
    stores = open_sources(info["sources"])
    check_current(root, stores)
    if info["storage"] == "memory":  # an index on disk stays there: a GPU copy would hold it all
        index = to_device(index)
    set_search_params(index, info["search_params"])
    return (cls or IndexFolder)(root, index, info, rows, stores)


def pull_folder(source: Location) -> Path:
    """The index folder at `source` (a URL) as a local copy in msfkit's cache, fetched again when
    index.json changed; a prefix without index.json is no index (an upload cut short leaves none)."""
    try:
        info_bytes = source.child(INFO_FILE).read_bytes()
    except FileNotFoundError:
        raise MsfkitError(f"{source.url}: no index here (no {INFO_FILE})") from None
    try:
        sizes = json.loads(info_bytes)["files"]
        names = sorted(name for name in sizes if name in FILES and name != INFO_FILE)
        wanted = {name: int(sizes[name]) for name in names}  # names from the object: only known ones
    except (ValueError, TypeError, KeyError, AttributeError):
        raise MsfkitError(f"{source.url}/{INFO_FILE}: not an index.json msfkit wrote") from None
    copy = url_cache_dir("indexes", source.url)
    if _held(copy, info_bytes, wanted):
        return copy
    staging = copy.with_name(f"{copy.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for name, size in wanted.items():
            where = source.child(name)
            if where.size() != size:
                raise MsfkitError(f"{where.url}: does not belong to this {INFO_FILE} (size differs)")
            with where.open("rb") as remote, open(staging / name, "wb") as local:
                shutil.copyfileobj(remote, local, 2**22)
        if source.child(INFO_FILE).read_bytes() != info_bytes:  # replaced while it was read
            raise MsfkitError(f"{source.url}: the index changed while it was read; open it again")
        (staging / INFO_FILE).write_bytes(info_bytes)
        shutil.rmtree(copy, ignore_errors=True)
        os.replace(staging, copy)
    except FileNotFoundError:
        raise MsfkitError(
            f"{source.url}: an object of the index is missing; rebuild or upload it again"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copy


def _held(folder: Path, info_bytes: bytes, sizes: dict[str, int]) -> bool:
    """Whether `folder` holds this index.json and exactly the files it lists, at their sizes."""
    try:
        same = (folder / INFO_FILE).read_bytes() == info_bytes
        return same and all((folder / name).stat().st_size == size for name, size in sizes.items())
    except OSError:
        return False


def read_faiss(root: Path, storage: str) -> Any:
    """index.faiss read into memory, or, stored on disk, with its lists memory-mapped from index.ivfdata
    (read only; found beside index.faiss wherever the folder was moved)."""
    flags = faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY if storage == "disk" else 0
    try:
        with quiet_stdout():  # faiss prints where it found index.ivfdata
            return faiss.read_index(str(root / INDEX_FILE), flags)
    except RuntimeError as e:
        raise MsfkitError(
            f"{root / INDEX_FILE}: unreadable faiss index ({str(e).splitlines()[-1]})"
        ) from None


def _read_info(root: Path) -> dict[str, Any]:
    """index.json, checked, after checking that the folder holds the files it names and no others."""
    if not root.is_dir():
        raise MsfkitError(f"{root}: no such index folder")
    present = {p.name for p in root.iterdir()}
    missing = [f for f in REQUIRED if f not in present]
    if missing:
        raise MsfkitError(f"{root}: not an msfkit index folder (missing {', '.join(missing)})")
    try:
        info = json.loads((root / INFO_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MsfkitError(f"{root / INFO_FILE}: unreadable ({e})") from None
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
        version = info.get("format_version") if isinstance(info, dict) else None
        raise MsfkitError(
            f"{root / INFO_FILE}: format_version {version!r}; this msfkit reads {FORMAT_VERSION} "
            "(rebuild the index with msfkit index)"
        )
    _check_info(root / INFO_FILE, info)
    expected = set(REQUIRED) | ({IVFDATA_FILE} if info["storage"] == "disk" else set())
    if expected - present:
        raise MsfkitError(f"{root}: an index stored on disk, but {IVFDATA_FILE} is missing")
    foreign = sorted(present - expected)
    if foreign:
        raise MsfkitError(f"{root}: holds files msfkit index did not write: {', '.join(foreign)}")
    return info


_INFO_FIELDS = {"type": str, "factory": str, "dim": int, "count": int}
_INFO_FIELDS |= {"storage": str, "search_params": dict, "model": dict, "sources": list}


def _check_info(path: Path, info: dict[str, Any]) -> None:
    """index.json of the right shape: each field there and of its type, one line naming what is not."""
    for key, kind in _INFO_FIELDS.items():
        if not isinstance(info.get(key), kind):
            raise MsfkitError(f"{path}: field {key!r} must be a {kind.__name__}, not {info.get(key)!r}")
    if not isinstance(info["model"].get("fingerprint"), str):
        raise MsfkitError(f"{path}: field 'model' has no fingerprint")
    if info["storage"] not in STORAGES:
        raise MsfkitError(
            f"{path}: field 'storage' must be one of {', '.join(STORAGES)}, not {info['storage']!r}"
        )
    for s in info["sources"]:
        if not (isinstance(s, dict) and all(isinstance(s.get(k), str) for k in ("store", "manifest_hash"))):
            raise MsfkitError(f"{path}: each of 'sources' needs a 'store' and a 'manifest_hash', not {s!r}")
