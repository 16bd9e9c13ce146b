"""The index folder's format: `IndexFolder` (load and validate), writing a folder, reopening its stores.

    INDEX/
      index.faiss    the faiss index (inner product on L2-normalised vectors)
      index.json     format_version, type + faiss factory string, metric, search parameters (nprobe /
                     efSearch), the model (name, revision, fingerprint), the stores it holds (path,
                     source root, manifest hash, rows), recall@10 on held-out queries and latency,
                     and the byte size of the two other files (a file from another index is refused)
      rows.parquet   one row per indexed vector: source (which store), path (relative to that
                     store's source root), label; a vector's faiss id is its row number here (the
                     stores' rows in order), whatever order it was added in

The folder is written under a temporary name and renamed into place. docs/formats.md has every field.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from msfkit.index.faiss_ops import normalized, search_index, set_search_params, to_device
from msfkit.models.errors import MsfkitError
from msfkit.models.files import is_disk_full

FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
INFO_FILE = "index.json"
ROWS_FILE = "rows.parquet"
FILES = (INDEX_FILE, INFO_FILE, ROWS_FILE)


class IndexFolder:
    """A loaded index folder: the faiss index, its `info` (index.json) and its row -> path table.

    `msfkit.open_index` gives the `msfkit.retrieval.Index` built on it (search by images, dedup).
    """

    def __init__(self, path: Path, index: Any, info: dict[str, Any], rows) -> None:
        self.path = path
        self.index = index
        self.info = info
        self.rows = rows  # pandas DataFrame: source, path, label

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path}, {self.info['factory']}, {len(self)} x {self.dim})"

    @cached_property
    def store(self):
        """The stores this index was built from, read as one (opened and checked once)."""
        return reopen_store(self.info)

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

    def absolute_paths(self, rows: np.ndarray | Sequence[int]) -> list[str | None]:
        """The source file of each index row (None for -1)."""
        roots = [Path(s["source_root"]) if s.get("source_root") else None for s in self.info["sources"]]
        src, rel = self.rows["source"].to_numpy(), self.rows["path"].to_numpy()
        out: list[str | None] = []
        for r in np.asarray(rows).ravel():
            if r < 0:
                out.append(None)
                continue
            root = roots[src[r]]
            out.append(str(root / rel[r]) if root is not None else str(rel[r]))
        return out


def open_folder(path: str | os.PathLike, cls: type[IndexFolder] | None = None) -> IndexFolder:
    """Open an index folder, refusing one with missing, foreign or inconsistent files."""
    import faiss
    import pyarrow.parquet as pq

    root = Path(path)
    if not root.is_dir():
        raise MsfkitError(f"{root}: no such index folder")
    present = {p.name for p in root.iterdir()}
    missing = [f for f in FILES if f not in present]
    if missing:
        raise MsfkitError(f"{root}: not an msfkit index folder (missing {', '.join(missing)})")
    foreign = sorted(present - set(FILES))
    if foreign:
        raise MsfkitError(f"{root}: holds files msfkit index did not write: {', '.join(foreign)}")
    try:
        info = json.loads((root / INFO_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MsfkitError(f"{root / INFO_FILE}: unreadable ({e})") from None
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
        version = info.get("format_version") if isinstance(info, dict) else None
        raise MsfkitError(
            f"{root / INFO_FILE}: format_version {version!r}; this msfkit reads {FORMAT_VERSION}"
        )
    _check_info(root / INFO_FILE, info)
    for name, size in info.get("files", {}).items():
        if name in (INDEX_FILE, ROWS_FILE) and (root / name).stat().st_size != size:
            raise MsfkitError(
                f"{root / name}: does not belong to this index.json (size differs); rebuild the index"
            )
    try:
        index = faiss.read_index(str(root / INDEX_FILE))
    except RuntimeError as e:
        raise MsfkitError(
            f"{root / INDEX_FILE}: unreadable faiss index ({str(e).splitlines()[-1]})"
        ) from None
    try:
        rows = pq.read_table(root / ROWS_FILE).to_pandas()
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise MsfkitError(f"{root / ROWS_FILE}: unreadable ({type(e).__name__})") from None
    sources = rows["source"].to_numpy() if "source" in rows else None
    if sources is None or (len(sources) and (sources.min() < 0 or sources.max() >= len(info["sources"]))):
        raise MsfkitError(f"{root / ROWS_FILE}: rows point outside the index's {len(info['sources'])} stores")
    if index.ntotal != info.get("count") or index.d != info.get("dim") or len(rows) != index.ntotal:
        raise MsfkitError(
            f"{root}: index.faiss holds {index.ntotal} x {index.d}, rows.parquet {len(rows)} rows, "
            f"index.json says {info.get('count')} x {info.get('dim')}; the folder is damaged, rebuild it"
        )
    check_current(root, info["sources"])
    index = to_device(index)
    set_search_params(index, info["search_params"])
    return (cls or IndexFolder)(root, index, info, rows)


def check_current(root: Path, sources: list[dict[str, Any]]) -> None:
    """One line, not stale neighbours, when a store the index holds replaced vectors since (a changed
    file embedded again); a store that only grew, moved, is gone or is unreadable is no error here."""
    from msfkit.store import open_store

    for s in sources:
        try:
            store = open_store(s["store"])
        except MsfkitError:
            continue
        if len(store.parts) == 1 and not store.grew_from(s["manifest_hash"], s.get("rows")):
            stores = " ".join(x["store"] for x in sources)
            raise MsfkitError(
                f"index {root} is out of date with {s['store']}; "
                f"rebuild with msfkit index {stores} -o {root} --force"
            )


_INFO_FIELDS = {"type": str, "factory": str, "dim": int, "count": int}
_INFO_FIELDS |= {"search_params": dict, "model": dict, "sources": list}


def _check_info(path: Path, info: dict[str, Any]) -> None:
    """index.json of the right shape: each field there and of its type, one line naming what is not."""
    for key, kind in _INFO_FIELDS.items():
        if not isinstance(info.get(key), kind):
            raise MsfkitError(f"{path}: field {key!r} must be a {kind.__name__}, not {info.get(key)!r}")
    if not isinstance(info["model"].get("fingerprint"), str):
        raise MsfkitError(f"{path}: field 'model' has no fingerprint")
    for s in info["sources"]:
        if not (isinstance(s, dict) and all(isinstance(s.get(k), str) for k in ("store", "manifest_hash"))):
            raise MsfkitError(f"{path}: each of 'sources' needs a 'store' and a 'manifest_hash', not {s!r}")


def reopen_store(info: dict[str, Any]):
    """The stores an index was built from, read as one; a user error when one moved or changed."""
    store = reopen_sources(info["sources"])
    if store is None:
        listed = ", ".join(s["store"] for s in info["sources"])
        raise MsfkitError(f"the stores this index was built from are gone or changed ({listed})")
    return store


def reopen_sources(sources: list[dict[str, Any]]):
    from msfkit.store import open_store

    try:
        store = open_store([s["store"] for s in sources])
    except MsfkitError:
        return None
    hashes = [source_entry(s)["manifest_hash"] for s in store.split()]
    return store if hashes == [s["manifest_hash"] for s in sources] else None


def source_entry(store) -> dict[str, Any]:
    """index.json's record of a single-part store: where it is, its source root, its hash and size."""
    part = store.parts[0]
    return {
        "store": str(part.root.resolve()),
        "source_root": part.manifest.get("source_root"),
        "manifest_hash": store.manifest_hash,
        "rows": len(store),
    }


def check_replaceable(out: Path, overwrite: bool) -> None:
    """A build may write `out` when it does not exist, or with `overwrite` when it is an msfkit index
    folder or empty; anything else (a store, a folder of the user's files) is refused untouched."""
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise MsfkitError(f"{out}: already exists; remove it or pass --force")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() and not out.is_symlink() else None
    if entries is None or set(entries) - set(FILES):
        what = "not a folder" if entries is None else f"holds {', '.join(entries[:5])}"
        raise MsfkitError(f"{out}: {what}, not an msfkit index; --force only replaces an index folder")


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the lock of the index folder `out`: a file beside it (the folder itself is replaced by a
    rename), removed when released. A lock file that was removed while we waited counts as taken."""
    import fcntl

    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_name(f".{out.name}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not path.exists() or os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise BlockingIOError  # its holder finished and removed it between our open and our lock
    except BlockingIOError:
        os.close(fd)
        raise MsfkitError(f"{out} is being written by another msfkit index; let it finish") from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def write_folder(out: Path, index: Any, info: dict[str, Any], rows, replace: bool) -> None:
    """Write the three files into a temporary folder beside `out`, then rename it into place.

    Temporaries a killed run left beside `out` are removed first; a full disk is one line, and
    the old index (if any) stays whole.
    """
    out = out.absolute()
    for stale in out.parent.glob(f".{out.name}.tmp*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out.parent.glob(f".{out.name}.old*"):  # a replaced index a killed run did not remove
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        try:
            _write_files(tmp, index, info, rows)
        except (OSError, RuntimeError) as e:  # faiss reports a failed write as RuntimeError
            if is_disk_full(e, tmp):
                raise MsfkitError(f"disk full: cannot write the index {out}; free space, run again") from None
            raise
        if out.exists():
            if not replace:
                raise MsfkitError(f"{out}: already exists; remove it or pass --force")
            old = out.with_name(f".{out.name}.old{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_files(tmp: Path, index: Any, info: dict[str, Any], rows) -> None:
    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    faiss.write_index(index, str(tmp / INDEX_FILE))
    labels = [v if isinstance(v, str) else None for v in rows["label"]]
    table = pa.table(
        {
            "source": pa.array(rows["source"].to_numpy(np.int32)),
            "path": pa.array(rows["path"].tolist(), pa.string()),
            "label": pa.array(labels, pa.string()),
        }
    )
    pq.write_table(table, tmp / ROWS_FILE)
    info["files"] = {name: (tmp / name).stat().st_size for name in (INDEX_FILE, ROWS_FILE)}
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=1, default=str) + "\n")
