"""Groups of near-duplicate images in an index: a k-NN graph cut at a similarity, then its components.

Every indexed vector (read back from the stores the index was built from, one block at a time)
asks the index for its k nearest neighbours; an edge joins two images whose cosine similarity is
at least `threshold`; the connected components with two or more images are the groups. Memory is
the index, one block of vectors and the kept edges: never an N x N matrix. A group larger than
k + 1 is still found whole as long as its members are chained by edges, as copies of one image are.

    groups = dedup("index", threshold=0.95)   # DataFrame: group, size, row, path, label, score
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from msfkit.index.folder import IndexFolder, open_folder, reopen_store
from msfkit.models.errors import MsfkitError

if TYPE_CHECKING:
    import pandas as pd

    from msfkit.retrieval.calibrate import Calibration

DEFAULT_THRESHOLD = 0.95
DEFAULT_K = 10
BLOCK_ROWS = 8192
COLUMNS = ("group", "size", "row", "path", "label", "score")


def dedup(
    index: IndexFolder | str | os.PathLike,
    threshold: float = DEFAULT_THRESHOLD,
    k: int = DEFAULT_K,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per image in a near-duplicate group; `score` is its best similarity within the group.

    Groups are numbered from 0, largest first; rows within a group are in index order.
    """
    import pandas as pd
    from tqdm import tqdm

    if not -1 <= threshold <= 1:
        raise MsfkitError(f"threshold {threshold}: a cosine similarity, between -1 and 1")
    if k < 1:
        raise MsfkitError(f"k must be >= 1, not {k}")
    index = index if not isinstance(index, (str, os.PathLike)) else open_folder(index)
    store = reopen_store(index.info)
    n = len(index)
    parent = np.arange(n)
    best = np.full(n, -np.inf, dtype=np.float32)
    with tqdm(total=n, unit="vec", desc="dedup", disable=not progress, leave=False) as bar:
        for start, block in store.iter_batches(BLOCK_ROWS):
            scores, rows = index.search_vectors(block, k + 1)
            own = np.arange(start, start + len(block))[:, None]
            keep = (rows >= 0) & (rows != own) & (scores >= threshold)
            a, b = np.broadcast_to(own, rows.shape)[keep], rows[keep]
            s = scores[keep]
            np.maximum.at(best, a, s)
            np.maximum.at(best, b, s)
            for i, j in zip(a.tolist(), b.tolist(), strict=True):
                _union(parent, i, j)
            bar.update(len(block))
    roots = np.array([_find(parent, i) for i in range(n)])
    members = np.nonzero(np.isfinite(best))[0]
    if not len(members):
        return pd.DataFrame(columns=COLUMNS)
    ids, sizes = np.unique(roots[members], return_counts=True)
    order = ids[np.lexsort((ids, -sizes))]  # largest group first, ties by first row
    number = {int(r): g for g, r in enumerate(order)}
    size_of = dict(zip(ids.tolist(), sizes.tolist(), strict=True))
    df = pd.DataFrame(
        {
            "group": [number[int(roots[m])] for m in members],
            "size": [size_of[int(roots[m])] for m in members],
            "row": members,
            "path": index.absolute_paths(members),
            "label": index.rows["label"].to_numpy()[members],
            "score": best[members].astype(float),
        }
    )
    return df.sort_values(["group", "row"], ignore_index=True)


@dataclass
class Duplicates:
    """What `find_duplicates` found: the groups, the removal list (with `keep`) and the calibration
    (with `threshold="auto"`)."""

    groups: pd.DataFrame
    removals: pd.DataFrame | None = None
    calibration: Calibration | None = None


def find_duplicates(
    source: IndexFolder | str | os.PathLike,
    *,
    threshold: float | str = DEFAULT_THRESHOLD,
    k: int = DEFAULT_K,
    keep: str | None = None,
    progress: bool = False,
    device: str | None = None,
) -> Duplicates:
    """`dedup` of an index folder or of an embedding store (searched exactly through a temporary flat
    index); with `keep`, also the removal list of `msfkit.retrieval.keep`.

    `threshold="auto"` measures the threshold first (`msfkit.retrieval.calibrate`) and raises a user
    error, saying why, when copies and distinct images overlap."""
    import tempfile

    from msfkit.index.build import build_index
    from msfkit.retrieval.calibrate import calibrate
    from msfkit.retrieval.keep import removal_list
    from msfkit.store import is_store

    if isinstance(threshold, str) and threshold != "auto":
        raise MsfkitError(f"threshold {threshold!r}: a cosine similarity between -1 and 1, or 'auto'")
    with tempfile.TemporaryDirectory(prefix="msfkit-dedup-") as tmp:
        if not isinstance(source, IndexFolder) and is_store(source):
            build_index(source, Path(tmp) / "index", kind="flat", recall=1.0)
            source = Path(tmp) / "index"
        index = source if isinstance(source, IndexFolder) else open_folder(source)
        found = Duplicates(groups=None)  # type: ignore[arg-type]
        if threshold == "auto":
            found.calibration = calibrate(index, device=device)
            if found.calibration.threshold is None:
                raise MsfkitError(found.calibration.explain())
            threshold = found.calibration.threshold
        found.groups = dedup(index, threshold=threshold, k=k, progress=progress)
        if keep is not None:
            found.removals = removal_list(found.groups, reopen_store(index.info).meta, keep)
        return found


def dedup_any(source: IndexFolder | str | os.PathLike, *, keep: str | None = None, **options) -> pd.DataFrame:
    """The groups (or, with `keep`, the removal list) of `find_duplicates`."""
    found = find_duplicates(source, keep=keep, **options)
    return found.groups if keep is None else found.removals


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving keeps the trees shallow
        i = parent[i]
    return int(i)


def _union(parent: np.ndarray, i: int, j: int) -> None:
    ri, rj = _find(parent, i), _find(parent, j)
    if ri != rj:
        parent[max(ri, rj)] = min(ri, rj)
