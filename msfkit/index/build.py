"""Building an index folder from embedding stores, and adding stores to one.

    info = build_index(["store"], "index")            # type chosen from N, D and the memory budget
    info = build_index(["store"], "index", on_disk=True, engine="ray")   # in pieces, merged on disk
    add_to_index("index", ["new-store"])              # stream another store's vectors in

`auto` picks exact search while it is cheap, HNSW while the graph builds quickly, IVF-Flat while the
vectors fit in the memory budget, IVF-PQ beyond (see `msfkit.index.plan`). IVF and PQ are trained on a
sample and every type is filled in streaming batches from the store's shards, so memory stays at
the index plus one batch. Recall is measured on stored rows held out of training and of the index
until the search parameters are tuned (see `msfkit.index.recall`), then they are added.

Stored on disk, the trained IVF is filled in pieces of whole store shards, one after another or in
parallel Ray tasks, and the pieces are merged into index.ivfdata (see `msfkit.index.pieces`); the
parameters are tuned on the pieces searched as one, and the held-out rows join as a last piece.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd
from tqdm import tqdm

from msfkit.index import recall as index_recall
from msfkit.index.distributed import connect, fill_on_ray
from msfkit.index.faiss_ops import add_rows, normalized, to_cpu, to_device
from msfkit.index.folder import FORMAT_VERSION, IVFDATA_FILE, open_folder
from msfkit.index.pieces import PIECE_ROWS, Stacked, fill_piece, merge_on_disk, plan_pieces, write_piece
from msfkit.index.plan import DEFAULT_MEMORY, IndexPlan, choose_index
from msfkit.index.sources import Source, joined, source_entry
from msfkit.index.writing import check_replaceable, locked, staged, write_files, write_folder
from msfkit.models.errors import MsfkitError
from msfkit.models.identity import check_same_model
from msfkit.runtime import parse_size
from msfkit.store import Store, open_store

DEFAULT_RECALL = 0.95
BATCH_ROWS = 65536  # vectors read and added per step while filling
ENGINES = ("local", "ray")


@dataclasses.dataclass
class BuildOptions:
    """How `build_index` builds; `engine="ray"` fills pieces in Ray tasks and implies `on_disk`."""

    kind: str = "auto"  # auto | flat | hnsw | ivf | ivfpq
    memory: int | str = DEFAULT_MEMORY  # RAM the index may hold when searched ("4GB")
    recall: float = DEFAULT_RECALL  # recall@10 target the search parameters are tuned to
    seed: int = 0  # held-out queries and training sample
    progress: bool = False  # progress bars on stderr
    on_disk: bool = False  # IVF lists in index.ivfdata, searched memory-mapped
    engine: str = "local"  # local | ray: who fills the pieces of an on-disk index
    address: str | None = None  # the Ray cluster (None: RAY_ADDRESS or a new local one; "auto")
    piece_rows: int = PIECE_ROWS  # vectors per piece of an on-disk index

    def __post_init__(self) -> None:
        if not 0 < self.recall <= 1:
            raise MsfkitError(f"recall target {self.recall}: expected a number in (0, 1]")
        if self.engine not in ENGINES:
            raise MsfkitError(f"engine {self.engine!r}: expected one of {', '.join(ENGINES)}")
        self.on_disk = self.on_disk or self.engine == "ray"


def build_index(
    stores: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Build the index folder `out` from one or more embedding stores; returns its index.json.

    Options are `BuildOptions`' fields. `overwrite` replaces an existing index folder (or an empty
    folder), never anything else. The folder is locked while it is built: a second build or `add`
    on it stops at once.
    """
    opts = BuildOptions(**options)
    if opts.engine == "ray":  # an unreachable cluster or a missing extra stops here, before any work
        connect(opts.address)
    out = Path(out)
    with locked(out):
        check_replaceable(out, overwrite)
        return _build(stores, out, opts)


def _build(stores, out: Path, opts: BuildOptions) -> dict[str, Any]:
    store = open_store(stores)
    _check_complete(store)
    memory = parse_size(opts.memory, "memory budget")
    n, d = len(store), store.dim
    plan = choose_index(n, d, memory, opts.kind, opts.on_disk)
    t0 = time.perf_counter()
    held_out = index_recall.query_rows(n, opts.seed)
    index = faiss.index_factory(d, plan.factory, faiss.METRIC_INNER_PRODUCT)
    grid = index_recall.param_grid(index, plan.type)
    if plan.type == "ivfpq":  # polysemous codes are never searched; training them costs minutes
        faiss.downcast_index(index).do_polysemous_training = False
    work = to_device(index)
    trained_on = _train(work, store, plan, held_out, opts.seed)
    info = _info(plan, store, memory, trained_on, "disk" if opts.on_disk else "memory")
    rows = _rows_table(store, source_offset=0)
    if not opts.on_disk:
        _fill(work, store, opts.progress, skip=held_out)
        seconds = time.perf_counter() - t0
        tuned = index_recall.tune(work, grid, store, held_out, opts.recall)
        work.add_with_ids(normalized(store.take(held_out)), held_out)
        _timed(info, tuned, opts.seed, seconds, time.perf_counter() - t0 - seconds)
        write_folder(out, to_cpu(work), info, rows)
        return info
    trained = to_cpu(work)
    with staged(out) as tmp:
        scratch = tmp / ".pieces"  # removed before the folder is renamed into place
        scratch.mkdir()
        files = _fill_pieces(trained, store, held_out, scratch, opts)
        seconds = time.perf_counter() - t0
        with Stacked(trained, files) as view:
            tuned = index_recall.tune(view.index, grid, store, held_out, opts.recall)
        files.append(write_piece(trained, store.take(held_out), held_out, scratch / "held-out.faiss"))
        merged = merge_on_disk(trained, files, tmp / IVFDATA_FILE)
        shutil.rmtree(scratch)
        _timed(info, tuned, opts.seed, seconds, time.perf_counter() - t0 - seconds)
        info["build"]["pieces"] = len(files) - 1
        info["build"]["engine"] = opts.engine
        write_files(tmp, merged, info, rows)
    return info


def _train(index: Any, store: Store, plan: IndexPlan, held_out: np.ndarray, seed: int) -> int:
    """Train `index` on a sample of the rows not held out; returns the sample's size."""
    if not plan.train_rows:
        return 0
    n = len(store)
    pool = np.setdiff1d(np.arange(n), held_out) if len(held_out) < n else np.arange(n)
    rng = np.random.default_rng(seed + 1)
    train = np.sort(rng.choice(pool, size=min(plan.train_rows, len(pool)), replace=False))
    index.train(normalized(store.take(train)))
    return len(train)


def _fill_pieces(
    trained: Any, store: Store, skip: np.ndarray, folder: Path, opts: BuildOptions
) -> list[Path]:
    """Every row but `skip` in piece files under `folder`, filled here or in Ray tasks."""
    pieces = plan_pieces(store, opts.piece_rows)
    files = [folder / f"{p.number:05d}.faiss" for p in pieces]
    blob = faiss.serialize_index(trained)
    paths = [str(p.root) for p in store.parts]
    if opts.engine == "ray":
        fill_on_ray(blob, paths, pieces, skip, files, address=opts.address, progress=opts.progress)
    else:
        for piece, file in tqdm(
            list(zip(pieces, files, strict=True)), unit="piece", desc="indexing", disable=not opts.progress
        ):
            fill_piece(blob, paths, piece, skip, str(file))
    return files


def _info(plan: IndexPlan, store: Store, memory: int, trained_on: int, storage: str) -> dict[str, Any]:
    """index.json of a new index, before its timings and recall are known."""
    return {
        "format_version": FORMAT_VERSION,
        "type": plan.type,
        "factory": plan.factory,
        "metric": "inner_product",
        "normalized": True,
        "storage": storage,
        "dim": store.dim,
        "count": len(store),
        "search_params": {},
        "model": dataclasses.asdict(store.model),
        # how the vectors were made (precision, draft decoding): image queries are embedded the same way
        "embed_settings": dataclasses.asdict(store.settings),
        "sources": [source_entry(part_store) for part_store in store.split()],
        "build": {
            "reason": plan.reason,
            "memory_budget": memory,
            "estimated_bytes": plan.bytes,
            "resident_bytes": plan.resident,
            "train_rows": trained_on,
            "device": "gpu" if faiss.get_num_gpus() > 0 else "cpu",
        },
    }


def _timed(
    info: dict[str, Any], tuned: dict[str, Any], seed: int, seconds: float, tune_seconds: float
) -> None:
    info["build"]["seconds"] = round(seconds, 3)  # training and filling
    info["build"]["tune_seconds"] = round(tune_seconds, 3)  # exact neighbours, tuning, timing
    info["search_params"] = tuned.pop("search_params")
    info["recall"] = dict(tuned, seed=seed)


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
    old = open_folder(index_dir)
    if old.info["storage"] == "disk":
        listed = " ".join(s["store"] for s in old.info["sources"])
        raise MsfkitError(
            f"{index_dir} is stored on disk and cannot be added to; build it again with the new stores: "
            f"msfkit index {listed} STORE... -o {index_dir} --on-disk --force"
        )
    store = open_store(stores)
    _check_complete(store)
    if store.dim != old.dim:
        raise MsfkitError(f"store holds {store.dim}-dimensional vectors; the index {old.dim}")
    check_same_model(store.model, old.model, "the store", f"the index {index_dir}", "rebuild or embed again")
    held = {s["manifest_hash"] for s in old.info["sources"]}
    parts = store.split()
    new_sources = [source_entry(s) for s in parts]
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
    everything = joined(old.sources + [Source(e, s) for e, s in zip(new_sources, parts, strict=True)])
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
    write_folder(Path(index_dir), index, info, rows)
    return info


def _check_complete(store) -> None:
    if not store.complete:
        raise MsfkitError(
            f"{store}: the embedding run has not finished; run msfkit embed again to complete it"
        )


def _rows_table(store, source_offset: int):
    """index row -> (source, path, label) for every vector of `store`, in store order."""
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
    with tqdm(total=len(store), unit="vec", desc="indexing", disable=not progress, leave=False) as bar:
        for start, block in store.iter_batches(BATCH_ROWS):
            add_rows(index, [(start, block)], skip, store, offset)
            bar.update(len(block))
