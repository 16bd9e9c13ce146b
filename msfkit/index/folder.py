"""An embedding store -> a faiss index folder that knows its model, its rows and its measured recall.

    INDEX/
      index.faiss    the faiss index (inner product on L2-normalised vectors)
      index.json     format_version, type + faiss factory string, metric, search parameters (nprobe /
                     efSearch), the model (name, revision, fingerprint), the stores it holds (path,
                     source root, manifest hash, rows), recall@10 on held-out queries and latency,
                     and the byte size of the two other files (a file from another index is refused)
      rows.parquet   one row per indexed vector: source (which store), path (relative to that
                     store's source root), label; a vector's faiss id is its row number here (the
                     stores' rows in order), whatever order it was added in

    info = build_index(["store"], "index")            # type chosen from N, D and the memory budget
    add_to_index("index", ["new-store"])              # stream another store's vectors in
    index = load_index("index")                       # validated; index.search(vectors, k)

`auto` picks exact search while it is cheap, HNSW while the graph builds quickly, IVF-Flat while the
vectors fit in the memory budget, IVF-PQ beyond (see `msfkit.index.plan`). IVF and PQ are trained on a
sample and every type is filled in streaming batches from the store's shards, so memory stays at
the index plus one batch. Recall is measured on stored rows held out of training and of the index
until the search parameters are tuned (see `msfkit.index.recall`), then they are added. The folder
is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from msfkit.index.faiss_ops import search_index, set_search_params, to_cpu, to_device
from msfkit.index.plan import DEFAULT_MEMORY, choose_index
from msfkit.models.errors import MsfkitError
from msfkit.runtime import parse_size

FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
INFO_FILE = "index.json"
ROWS_FILE = "rows.parquet"
FILES = (INDEX_FILE, INFO_FILE, ROWS_FILE)
DEFAULT_RECALL = 0.95
BATCH_ROWS = 65536  # vectors read and added per step while filling


# -- the index folder ---------------------------------------------------------------------------


class Index:
    """A loaded index folder: the faiss index, its `info` (index.json) and its row -> path table."""

    def __init__(self, path: Path, index: Any, info: dict[str, Any], rows) -> None:
        self.path = path
        self.index = index
        self.info = info
        self.rows = rows  # pandas DataFrame: source, path, label

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __repr__(self) -> str:
        return f"Index({self.path}, {self.info['factory']}, {len(self)} x {self.dim})"

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def model(self) -> dict[str, Any]:
        """{"name", "revision", "fingerprint", "config"} of the model the indexed vectors came from."""
        return self.info["model"]

    def search(self, vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the k nearest indexed vectors to each query; rows are -1 past the end."""
        q = normalized(vectors)
        if q.shape[1] != self.dim:
            raise MsfkitError(f"query vectors have dimension {q.shape[1]}; this index holds {self.dim}")
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


def normalized(vectors: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of `vectors`, every row scaled to unit length (zero rows stay zero)."""
    x = np.array(vectors, dtype=np.float32, order="C", copy=True, ndmin=2)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def load_index(path: str | os.PathLike) -> Index:
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
    if index.ntotal != info.get("count") or index.d != info.get("dim") or len(rows) != index.ntotal:
        raise MsfkitError(
            f"{root}: index.faiss holds {index.ntotal} x {index.d}, rows.parquet {len(rows)} rows, "
            f"index.json says {info.get('count')} x {info.get('dim')}; the folder is damaged, rebuild it"
        )
    index = to_device(index)
    set_search_params(index, info["search_params"])
    return Index(root, index, info, rows)


# -- building -----------------------------------------------------------------------------------


def build_index(
    stores: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    kind: str = "auto",
    memory: int | str = DEFAULT_MEMORY,
    recall: float = DEFAULT_RECALL,
    overwrite: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Build the index folder `out` from one or more embedding stores; returns its index.json."""
    import faiss

    from msfkit.index import recall as index_recall
    from msfkit.store.reader import open_store

    out = Path(out)
    if out.exists() and not overwrite:
        raise MsfkitError(f"{out}: already exists; remove it or pass --force")
    if not 0 < recall <= 1:
        raise MsfkitError(f"recall target {recall}: expected a number in (0, 1]")
    store = open_store(stores)
    _check_complete(store)
    memory = parse_size(memory, "memory budget")
    n, d = len(store), store.dim
    plan = choose_index(n, d, memory, kind)
    t0 = time.perf_counter()
    held_out = index_recall.query_rows(n, seed)
    index = faiss.index_factory(d, plan.factory, faiss.METRIC_INNER_PRODUCT)
    grid = index_recall.param_grid(index, plan.type)
    if plan.type == "ivfpq":  # polysemous codes are never searched; training them costs minutes
        faiss.downcast_index(index).do_polysemous_training = False
    work = to_device(index)
    trained_on = 0
    if plan.train_rows:
        pool = np.setdiff1d(np.arange(n), held_out) if len(held_out) < n else np.arange(n)
        rng = np.random.default_rng(seed + 1)
        train = np.sort(rng.choice(pool, size=min(plan.train_rows, len(pool)), replace=False))
        work.train(normalized(take_rows(store, train)))
        trained_on = len(train)
    _fill(work, store, progress, skip=held_out)
    seconds = time.perf_counter() - t0
    tuned = index_recall.tune(work, grid, store, held_out, recall)
    tuned["seed"] = seed
    work.add_with_ids(normalized(take_rows(store, held_out)), held_out)
    index = to_cpu(work)
    tune_seconds = time.perf_counter() - t0 - seconds
    sources = [_source(part_store) for part_store in _part_stores(store)]
    info = {
        "format_version": FORMAT_VERSION,
        "type": plan.type,
        "factory": plan.factory,
        "metric": "inner_product",
        "normalized": True,
        "dim": d,
        "count": n,
        "search_params": {},
        "model": _model_info(store.model),
        "sources": sources,
        "build": {
            "reason": plan.reason,
            "memory_budget": memory,
            "estimated_bytes": plan.bytes,
            "train_rows": trained_on,
            "seconds": round(seconds, 3),  # training and filling
            "tune_seconds": round(tune_seconds, 3),  # exact neighbours, tuning, timing
            "device": "gpu" if faiss.get_num_gpus() > 0 else "cpu",
        },
    }
    info["search_params"] = tuned.pop("search_params")
    info["recall"] = tuned
    _write_folder(out, index, info, _rows_table(store, source_offset=0), replace=overwrite)
    return info


def add_to_index(
    index_dir: str | os.PathLike,
    stores: str | os.PathLike | Sequence[str | os.PathLike],
    progress: bool = False,
) -> dict[str, Any]:
    """Add the vectors of other stores to an existing index folder; returns the new index.json.

    The search parameters are tuned again when every store the index holds can still be opened;
    otherwise the old parameters stay and the recorded recall is marked stale.
    """
    import pandas as pd

    from msfkit.index import recall as index_recall
    from msfkit.store.reader import open_store

    old = load_index(index_dir)
    store = open_store(stores)
    _check_complete(store)
    if store.dim != old.dim:
        raise MsfkitError(f"store holds {store.dim}-dimensional vectors; the index {old.dim}")
    if store.model.get("fingerprint") != old.model["fingerprint"]:
        raise MsfkitError(
            f"store was embedded with model {store.model.get('name')} ({store.model.get('fingerprint')}); "
            f"the index holds {old.model['name']} ({old.model['fingerprint']}): rebuild or embed again"
        )
    held = {s["manifest_hash"] for s in old.info["sources"]}
    new_sources = [_source(s) for s in _part_stores(store)]
    again = [s["store"] for s in new_sources if s["manifest_hash"] in held]
    if again:
        raise MsfkitError(f"{again[0]}: this store is already in the index")
    if len(store) == 0:
        raise MsfkitError(f"{store}: holds no vectors; nothing to add")
    index, offset = old.index, len(old)
    seed = old.info["recall"]["seed"]
    held_out = offset + index_recall.query_rows(len(store), seed)  # measured as at build, from the new rows
    _fill(index, store, progress, skip=held_out, offset=offset)
    info = dict(old.info)
    info["sources"] = old.info["sources"] + new_sources
    everything = _reopen_sources(info["sources"])
    if everything is None:
        info["recall"] = dict(old.info["recall"], stale=True)
    else:
        grid = index_recall.param_grid(to_cpu(index), info["type"])
        tuned = index_recall.tune(index, grid, everything, held_out, old.info["recall"]["target"])
        info["search_params"] = tuned.pop("search_params")
        info["recall"] = dict(tuned, seed=seed)
    index.add_with_ids(normalized(take_rows(store, held_out - offset)), held_out)
    index = to_cpu(index)
    info["count"] = int(index.ntotal)
    rows = pd.concat(
        [old.rows, _rows_table(store, source_offset=len(old.info["sources"]))], ignore_index=True
    )
    _write_folder(Path(index_dir), index, info, rows, replace=True)
    return info


def reopen_store(info: dict[str, Any]):
    """The stores an index was built from, read as one; a user error when one moved or changed."""
    store = _reopen_sources(info["sources"])
    if store is None:
        listed = ", ".join(s["store"] for s in info["sources"])
        raise MsfkitError(f"the stores this index was built from are gone or changed ({listed})")
    return store


def _reopen_sources(sources: list[dict[str, Any]]):
    from msfkit.store.reader import open_store

    try:
        store = open_store([s["store"] for s in sources])
    except MsfkitError:
        return None
    hashes = [_source(s)["manifest_hash"] for s in _part_stores(store)]
    return store if hashes == [s["manifest_hash"] for s in sources] else None


def _check_complete(store) -> None:
    if not store.complete:
        raise MsfkitError(
            f"{store}: the embedding run has not finished; run msfkit embed again to complete it"
        )


def _part_stores(store) -> list:
    """One single-part Store per part of `store`, so each gets its own source entry and hash."""
    from msfkit.store.reader import Store

    return [Store([part]) for part in store.parts]


def _source(store) -> dict[str, Any]:
    part = store.parts[0]
    return {
        "store": str(part.root.resolve()),
        "source_root": part.manifest.get("source_root"),
        "manifest_hash": store.manifest_hash,
        "rows": len(store),
    }


def _model_info(model: dict[str, Any]) -> dict[str, Any]:
    return {k: model.get(k) for k in ("name", "revision", "fingerprint", "config")}


def _rows_table(store, source_offset: int):
    """index row -> (source, path, label) for every vector of `store`, in store order."""
    import pandas as pd

    frames = []
    for i, part in enumerate(_part_stores(store)):
        meta = part.meta
        frames.append(
            pd.DataFrame(
                {"source": np.int32(source_offset + i), "path": meta["path"], "label": meta["label"]}
            )
        )
    return pd.concat(frames, ignore_index=True)


def take_rows(store, rows: np.ndarray) -> np.ndarray:
    """The vectors of the sorted store `rows`, read shard by shard (only those rows are read)."""
    out = np.empty((len(rows), store.dim), dtype=np.float32)
    start, i = 0, 0
    for array in store.shard_vectors():
        end = start + len(array)
        j = int(np.searchsorted(rows, end))
        out[i:j] = array[rows[i:j] - start]
        i, start = j, end
    return out


def _fill(index: Any, store, progress: bool, skip: np.ndarray, offset: int = 0) -> None:
    """Add every row of `store` but the sorted ids `skip`, as ids `offset + row`, one batch at a time."""
    from tqdm import tqdm

    with tqdm(total=len(store), unit="vec", desc="indexing", disable=not progress, leave=False) as bar:
        for start, block in store.iter_batches(BATCH_ROWS):
            ids = np.arange(offset + start, offset + start + len(block))
            keep = ~np.isin(ids, skip)
            index.add_with_ids(normalized(block[keep]), ids[keep])
            bar.update(len(block))


def _write_folder(out: Path, index: Any, info: dict[str, Any], rows, replace: bool) -> None:
    """Write the three files into a temporary folder beside `out`, then rename it into place."""
    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = out.absolute()
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        table = pa.table(
            {
                "source": pa.array(rows["source"].to_numpy(np.int32)),
                "path": pa.array(rows["path"].tolist(), pa.string()),
                "label": pa.array([v if isinstance(v, str) else None for v in rows["label"]], pa.string()),
            }
        )
        pq.write_table(table, tmp / ROWS_FILE)
        info["files"] = {name: (tmp / name).stat().st_size for name in (INDEX_FILE, ROWS_FILE)}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1, default=str) + "\n")
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
