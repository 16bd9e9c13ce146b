"""Adding the vectors of more stores to an index folder (`msfkit index --add INDEX STORE...`).

    info = add_to_index("index", ["new-store"])

An index in memory is read, filled with the new rows in streaming batches and written again; one
stored on disk gets the new rows in pieces, and its lists and the pieces are merged into a new
index.ivfdata (the old one is read where it is, never loaded). Either way the new rows get the ids
after the index's last, recall is measured again on rows held out of the new store (tuned again when
every store the index holds can be opened unchanged), and the folder is replaced whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from msfkit.data.storage import local_path
from msfkit.index import recall as index_recall
from msfkit.index.faiss_ops import normalized, to_cpu
from msfkit.index.fill import check_complete, fill, fill_pieces, rows_table
from msfkit.index.folder import IVFDATA_FILE, IndexFolder, open_folder, pull_folder
from msfkit.index.pieces import Stacked, empty_copy, merge_on_disk, write_piece
from msfkit.index.sources import Source, joined, source_entry
from msfkit.index.writing import (
    locked,
    remote_target,
    staged,
    upload_folder,
    write_files,
    write_folder,
)
from msfkit.models.errors import MsfkitError
from msfkit.models.identity import check_same_model
from msfkit.store import Store, open_store


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
    target = remote_target(index_dir)
    if target is not None:  # object storage: added to a local copy, uploaded again index.json last
        with tempfile.TemporaryDirectory(prefix="msfkit-index-") as tmp:
            work = Path(tmp) / "index"
            shutil.copytree(pull_folder(target), work)
            info = _add(work, stores, progress)
            upload_folder(work, target)
        return info
    with locked(Path(local_path(index_dir))):
        return _add(Path(local_path(index_dir)), stores, progress)


def _add(index_dir: Path, stores, progress: bool) -> dict[str, Any]:
    old = open_folder(index_dir)
    store = open_store(stores)
    check_complete(store)
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
    offset, seed = len(old), old.info["recall"]["seed"]
    held_out = offset + index_recall.query_rows(len(store), seed)  # measured as at build, from the new rows
    info = dict(old.info)
    info["sources"] = old.info["sources"] + new_sources
    everything = joined(old.sources + [Source(e, s) for e, s in zip(new_sources, parts, strict=True)])
    rows = pd.concat([old.rows, rows_table(store, source_offset=len(old.info["sources"]))], ignore_index=True)
    if old.info["storage"] == "disk":
        _add_on_disk(old, store, held_out, info, rows, everything=everything, progress=progress)
        return info
    index = old.index
    fill(index, store, progress, skip=held_out, offset=offset)
    _retune(index, everything, held_out, info)
    index.add_with_ids(normalized(store.take(held_out - offset)), held_out)
    index = to_cpu(index)
    info["count"] = int(index.ntotal)
    write_folder(index_dir, index, info, rows)
    return info


def _add_on_disk(
    old: IndexFolder,
    store: Store,
    held_out: np.ndarray,
    info: dict[str, Any],
    rows: pd.DataFrame,
    *,
    everything: Store | None,
    progress: bool,
) -> None:
    """The index's lists and the new rows' pieces merged into the new folder's index.ivfdata."""
    offset = len(old)
    trained = empty_copy(old.index)
    with staged(old.path) as tmp:
        scratch = tmp / ".pieces"  # removed before the folder is renamed into place
        scratch.mkdir()
        files = fill_pieces(trained, store, held_out, scratch, offset=offset, progress=progress)
        with Stacked(trained, files, base=old.index) as view:
            _retune(view.index, everything, held_out, info)
        held = write_piece(trained, store.take(held_out - offset), held_out, scratch / "held-out.faiss")
        files.append(held)
        merged = merge_on_disk(trained, files, tmp / IVFDATA_FILE, base=old.index)
        shutil.rmtree(scratch)
        info["count"] = int(merged.ntotal)
        write_files(tmp, merged, info, rows)


def _retune(index: Any, everything: Store | None, held_out: np.ndarray, info: dict[str, Any]) -> None:
    """Search parameters tuned again on `index` (without the held-out rows) when all the index's stores
    can stand in for its vectors; else the old ones, and the recall marked stale."""
    if everything is None:
        info["recall"] = dict(info["recall"], stale=True)
        return
    grid = index_recall.param_grid(to_cpu(index), info["type"])
    tuned = index_recall.tune(index, grid, everything, held_out, info["recall"]["target"])
    info["search_params"] = tuned.pop("search_params")
    info["recall"] = dict(tuned, seed=info["recall"]["seed"])
