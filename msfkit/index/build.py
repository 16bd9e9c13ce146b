"""Building an index folder from embedding stores (`msfkit.index.add` adds stores to one).

    info = build_index(["store"], "index")            # type chosen from N, D and the memory budget
    info = build_index(["store"], "index", on_disk=True, engine="ray")   # in pieces, merged on disk

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
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from msfkit.cluster import connect
from msfkit.data.storage import local_path
from msfkit.index import recall as index_recall
from msfkit.index.faiss_ops import normalized, to_cpu, to_device
from msfkit.index.fill import check_complete, fill, fill_pieces, rows_table
from msfkit.index.folder import FORMAT_VERSION, IVFDATA_FILE
from msfkit.index.pieces import PIECE_ROWS, Stacked, merge_on_disk, write_piece
from msfkit.index.plan import DEFAULT_MEMORY, IndexPlan, choose_index
from msfkit.index.sources import source_entry
from msfkit.index.writing import (
    check_replaceable,
    locked,
    remote_target,
    staged,
    upload_folder,
    write_files,
    write_folder,
)
from msfkit.models.errors import MsfkitError
from msfkit.sizes import parse_size
from msfkit.store import Store, open_store

DEFAULT_RECALL = 0.95
ENGINES = ("local", "ray")


@dataclasses.dataclass
class BuildOptions:
    """How `build_index` builds; `engine="ray"` fills pieces in Ray tasks and implies `on_disk`."""

    kind: str = "auto"  # auto | flat | hnsw | ivf | ivfpq
    workload: str = "interactive"  # interactive | batch: the IVF-Flat's shape (msfkit.index.plan)
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
    on it stops at once. An `out` URL (`s3://bucket/index`) is built in a local temporary folder
    ($TMPDIR) and uploaded, index.json last (`msfkit.index.writing.upload_folder`); object stores
    have no locks, so two builds to one URL leave whichever committed last.
    """
    opts = BuildOptions(**options)
    if opts.engine == "ray":  # an unreachable cluster or a missing extra stops here, before any work
        connect(opts.address)
    target = remote_target(out)
    if target is not None:  # object storage: built in a local staging folder, then uploaded
        check_replaceable(target, overwrite)
        with tempfile.TemporaryDirectory(prefix="msfkit-index-") as tmp:
            info = _build(stores, Path(tmp) / "index", opts)
            upload_folder(Path(tmp) / "index", target)
        return info
    out = Path(local_path(out))
    with locked(out):
        check_replaceable(out, overwrite)
        return _build(stores, out, opts)


def _build(stores, out: Path, opts: BuildOptions) -> dict[str, Any]:
    store = open_store(stores)
    check_complete(store)
    memory = parse_size(opts.memory, "memory budget")
    n, d = len(store), store.dim
    plan = choose_index(n, d, memory, opts.kind, opts.on_disk, opts.workload)
    t0 = time.perf_counter()
    held_out = index_recall.query_rows(n, opts.seed)
    index = faiss.index_factory(d, plan.factory, faiss.METRIC_INNER_PRODUCT)
    grid = index_recall.param_grid(index, plan.type)
    if plan.type == "ivfpq":  # polysemous codes are never searched; training them costs minutes
        faiss.downcast_index(index).do_polysemous_training = False
    work = to_device(index)
    trained_on = _train(work, store, plan, held_out, opts.seed)
    info = _info(plan, store, memory, trained_on, "disk" if opts.on_disk else "memory")
    info["build"]["workload"] = opts.workload
    rows = rows_table(store, source_offset=0)
    if not opts.on_disk:
        fill(work, store, opts.progress, skip=held_out)
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
        files = fill_pieces(
            trained,
            store,
            held_out,
            scratch,
            piece_rows=opts.piece_rows,
            engine=opts.engine,
            address=opts.address,
            progress=opts.progress,
        )
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
