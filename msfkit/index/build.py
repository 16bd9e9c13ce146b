"""Building an index folder from embedding stores, and adding stores to one.

    info = build_index(["store"], "index")            # type chosen from N, D and the memory budget
    add_to_index("index", ["new-store"])              # stream another store's vectors in

`auto` picks exact search while it is cheap, HNSW while the graph builds quickly, IVF-Flat while the
vectors fit in the memory budget, IVF-PQ beyond (see `msfkit.index.plan`). IVF and PQ are trained on a
sample and every type is filled in streaming batches from the store's shards, so memory stays at
the index plus one batch. Recall is measured on stored rows held out of training and of the index
until the search parameters are tuned (see `msfkit.index.recall`), then they are added.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from msfkit.index import recall as index_recall
from msfkit.index.faiss_ops import normalized, to_cpu, to_device
from msfkit.index.folder import (
    FORMAT_VERSION,
    check_replaceable,
    locked,
    open_folder,
    reopen_sources,
    source_entry,
    write_folder,
)
from msfkit.index.plan import DEFAULT_MEMORY, choose_index
from msfkit.models.errors import MsfkitError
from msfkit.runtime import parse_size
from msfkit.store import open_store
from msfkit.store.format import check_finite

DEFAULT_RECALL = 0.95
BATCH_ROWS = 65536  # vectors read and added per step while filling


def build_index(
    stores: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    kind: str = "auto",
    memory: int | str = DEFAULT_MEMORY,
    recall: float = DEFAULT_RECALL,
    overwrite: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Build the index folder `out` from one or more embedding stores; returns its index.json.

    `overwrite` replaces an existing index folder (or an empty folder), never anything else. The
    folder is locked while it is built: a second build or `add` on it stops at once.
    """
    out = Path(out)
    with locked(out):
        check_replaceable(out, overwrite)
        return _build(stores, out, kind=kind, memory=memory, recall=recall, seed=seed, progress=progress)


def _build(stores, out: Path, *, kind: str, memory, recall: float, seed: int, progress: bool) -> dict:
    import faiss

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
        work.train(normalized(store.take(train)))
        trained_on = len(train)
    _fill(work, store, progress, skip=held_out)
    seconds = time.perf_counter() - t0
    tuned = index_recall.tune(work, grid, store, held_out, recall)
    tuned["seed"] = seed
    work.add_with_ids(normalized(store.take(held_out)), held_out)
    index = to_cpu(work)
    tune_seconds = time.perf_counter() - t0 - seconds
    sources = [source_entry(part_store) for part_store in store.split()]
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
        # how the vectors were made (precision, draft decoding): image queries are embedded the same way
        "embed_settings": store.manifest.get("settings") or {},
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
    write_folder(out, index, info, _rows_table(store, source_offset=0), replace=True)
    return info


def add_to_index(
    index_dir: str | os.PathLike,
    stores: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """Add the vectors of other stores to an existing index folder; returns the new index.json.

    The search parameters are tuned again when every store the index holds can still be opened;
    otherwise the old parameters stay and the recorded recall is marked stale. The folder is
    locked meanwhile: a concurrent `add` or build on it stops at once, so no store is lost.
    """
    with locked(Path(index_dir)):
        return _add(Path(index_dir), stores, progress)


def _add(index_dir: Path, stores, progress: bool) -> dict[str, Any]:
    import pandas as pd

    old = open_folder(index_dir)
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
    new_sources = [source_entry(s) for s in store.split()]
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
    everything = reopen_sources(info["sources"])
    if everything is None:
        info["recall"] = dict(old.info["recall"], stale=True)
    else:
        grid = index_recall.param_grid(to_cpu(index), info["type"])
        tuned = index_recall.tune(index, grid, everything, held_out, old.info["recall"]["target"])
        info["search_params"] = tuned.pop("search_params")
        info["recall"] = dict(tuned, seed=seed)
    index.add_with_ids(normalized(store.take(held_out - offset)), held_out)
    index = to_cpu(index)
    info["count"] = int(index.ntotal)
    rows = pd.concat(
        [old.rows, _rows_table(store, source_offset=len(old.info["sources"]))], ignore_index=True
    )
    write_folder(Path(index_dir), index, info, rows, replace=True)
    return info


def _check_complete(store) -> None:
    if not store.complete:
        raise MsfkitError(
            f"{store}: the embedding run has not finished; run msfkit embed again to complete it"
        )


def _model_info(model: dict[str, Any]) -> dict[str, Any]:
    return {k: model.get(k) for k in ("name", "revision", "fingerprint", "config")}


def _rows_table(store, source_offset: int):
    """index row -> (source, path, label) for every vector of `store`, in store order."""
    import pandas as pd

    frames = []
    for i, part in enumerate(store.split()):
        meta = part.meta
        frames.append(
            pd.DataFrame(
                {"source": np.int32(source_offset + i), "path": meta["path"], "label": meta["label"]}
            )
        )
    return pd.concat(frames, ignore_index=True)


def _fill(index: Any, store, progress: bool, skip: np.ndarray, offset: int = 0) -> None:
    """Add every row of `store` but the sorted ids `skip`, as ids `offset + row`, one batch at a time."""
    from tqdm import tqdm

    with tqdm(total=len(store), unit="vec", desc="indexing", disable=not progress, leave=False) as bar:
        for start, block in store.iter_batches(BATCH_ROWS):
            check_finite(block, start, store)
            ids = np.arange(offset + start, offset + start + len(block))
            keep = ~np.isin(ids, skip)
            index.add_with_ids(normalized(block[keep]), ids[keep])
            bar.update(len(block))
