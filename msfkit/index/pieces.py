"""Building an IVF index in pieces, stored on disk: trained once, filled piece by piece, merged on disk.

    pieces = plan_pieces(store, piece_rows)                   # runs of whole store shards
    fill_piece(trained_bytes, store_paths, piece, skip, file)  # one piece: local, or a Ray task
    with Stacked(trained, files) as view: tune(view.index, ...)  # the pieces searched as one
    index = merge_on_disk(trained, files, folder / "index.ivfdata")
    empty_copy(index)                                          # to add pieces to an index on disk

The coarse quantizer (and PQ) is trained once by the caller; every piece is a copy of that empty
index filled with the rows of some store shards, written to its own file, so pieces can be filled
in any order, by any process that reads the store. `merge_on_disk` (faiss.contrib.ondisk's method)
copies their inverted lists, after those of an index being added to, into one index.ivfdata; the
index searches it memory-mapped. Ids are the
store's row numbers, so the merged index answers as one filled in one process from the same
trained index (faiss's demo_ondisk_ivf.py is the model).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from msfkit.index.faiss_ops import add_rows, normalized, quiet_stdout
from msfkit.store import Store, open_store

PIECE_ROWS = 1 << 20  # vectors per piece (at least one store shard): what one worker fills at once
BATCH_ROWS = 65536  # vectors read and added per step


@dataclass(frozen=True)
class Piece:
    """Store shards [first, last) (counted across the store's parts), holding rows [start, end), which
    get the ids `offset + row`."""

    number: int
    first: int
    last: int
    start: int
    end: int
    offset: int = 0


def plan_pieces(store: Store, piece_rows: int = PIECE_ROWS, offset: int = 0) -> list[Piece]:
    """Consecutive runs of whole shards of about `piece_rows` rows each, covering the store; its rows
    get the ids `offset + row`."""
    sizes = [s.rows for p in store.parts for s in p.shards]
    pieces: list[Piece] = []
    first, start, rows = 0, 0, 0
    for k, size in enumerate(sizes):
        rows += size
        if rows >= piece_rows or k == len(sizes) - 1:
            pieces.append(Piece(len(pieces), first, k + 1, start, start + rows, offset))
            first, start, rows = k + 1, start + rows, 0
    return pieces


def fill_piece(trained: np.ndarray, stores: list[str], piece: Piece, skip: np.ndarray, out: str) -> int:
    """Fill a copy of the `trained` empty index (faiss.serialize_index bytes) with the rows of `piece`
    of the store at `stores` but the sorted ids `skip`, and write it to `out`; returns its count.

    The same function fills a piece in the building process and in a Ray worker."""
    index = faiss.deserialize_index(trained)
    store = open_store(stores)
    arrays = _shard_arrays(store, piece)
    starts = piece.start + np.cumsum([0, *(len(a) for a in arrays[:-1])])
    blocks = (
        (int(first) + i, np.asarray(array[i : i + BATCH_ROWS]))
        for first, array in zip(starts, arrays, strict=True)
        for i in range(0, len(array), BATCH_ROWS)
    )
    add_rows(index, blocks, skip, store, piece.offset)
    faiss.write_index(index, out)
    return int(index.ntotal)


def _shard_arrays(store: Store, piece: Piece) -> list[np.ndarray]:
    """The piece's shards, memory-mapped; only those (a store of many shards is never mapped whole)."""
    parts, first = [], 0
    for part in store.parts:
        lo, hi = max(piece.first - first, 0), min(piece.last - first, len(part.shards))
        if lo < hi:
            parts.append(dataclasses.replace(part, shards=part.shards[lo:hi]))
        first += len(part.shards)
    return Store(parts).shard_vectors()


def write_piece(trained: Any, vectors: np.ndarray, ids: np.ndarray, out: Path) -> Path:
    """A piece of the given vectors (the held-out recall queries, added after tuning) at `out`."""
    index = faiss.clone_index(trained)
    index.add_with_ids(normalized(vectors), np.asarray(ids, dtype=np.int64))
    faiss.write_index(index, str(out))
    return out


def empty_copy(index: Any) -> Any:
    """A copy of a trained IVF index without its vectors, also for one whose lists are on disk (which
    faiss cannot clone): the lists are set aside for the copy and put back."""
    ivf = faiss.extract_index_ivf(index)
    lists, owned, count = ivf.invlists, ivf.own_invlists, index.ntotal
    empty = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
    ivf.own_invlists = False  # not freed by the swap
    ivf.replace_invlists(empty, True)
    empty.this.disown()  # the index frees it when it is swapped out again
    index.ntotal = ivf.ntotal = 0
    try:
        return faiss.clone_index(index)
    finally:
        ivf.replace_invlists(lists, owned)
        index.ntotal = ivf.ntotal = count


class Stacked:
    """An open index (`base`, or none) and written pieces searched as one index, their lists read where
    they are (the pieces' memory-mapped), without merging them: to tune the search parameters
    before the held-out piece joins. Close it (or use `with`) before the files go."""

    def __init__(self, trained: Any, files: list[Path], base: Any | None = None) -> None:
        self._indexes = _with_pieces(base, files)
        self._lists = _lists(self._indexes)
        self._stack = faiss.HStackInvertedLists(self._lists.size(), self._lists.data())
        self.index = faiss.clone_index(trained)
        ivf = faiss.extract_index_ivf(self.index)
        ivf.replace_invlists(self._stack, False)
        ivf.ntotal = self.index.ntotal = sum(int(i.ntotal) for i in self._indexes)

    def __enter__(self) -> Stacked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the stacked index first, then the indexes whose lists it reads."""
        self.index = self._stack = self._lists = None
        self._indexes = []


def merge_on_disk(trained: Any, files: list[Path], ivfdata: Path, base: Any | None = None) -> Any:
    """A copy of the `trained` empty index holding the lists of `base` (an open index, or none) and of
    every piece, in that order, written to `ivfdata` (faiss.contrib.ondisk.merge_ondisk's method,
    taking an open index's lists too)."""
    indexes = _with_pieces(base, files)
    lists = _lists(indexes)
    index = faiss.clone_index(trained)
    ivf = faiss.extract_index_ivf(index)
    merged = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(ivfdata))
    with quiet_stdout():  # faiss prints the file's resizing
        index.ntotal = ivf.ntotal = merged.merge_from_multiple(lists.data(), lists.size(), False)
    ivf.replace_invlists(merged, True)
    merged.this.disown()  # the index frees it
    return index


def _with_pieces(base: Any | None, files: list[Path]) -> list[Any]:
    """`base` (if any) and the piece files, read with their lists memory-mapped."""
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
    return ([base] if base is not None else []) + [faiss.read_index(str(f), flags) for f in files]


def _lists(indexes: list[Any]) -> Any:
    """faiss's vector of the indexes' inverted lists (the indexes must outlive it)."""
    out = faiss.InvertedListsPtrVector()
    for index in indexes:
        out.push_back(faiss.extract_index_ivf(index).invlists)
    return out
