"""Which file of each near-duplicate group to keep, and so which to remove: a list, never a deletion.

    removals = removal_list(groups, store.meta, keep="largest")   # path, group, kept, reason

`first`: the first in index order (the order the files were embedded in); `largest`: the most
pixels, then the most bytes; `newest`: the latest modification time. Ties go to the first.

`keep_fraction` is the size budget instead of a threshold: keep a share of the collection, the most
distinct, by dropping the most redundant image first (the `keep` loser of the closest pair left).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from msfkit.models.errors import MsfkitError

KEEP = ("first", "largest", "newest")
COLUMNS = ("path", "group", "kept", "reason")


def kept_rows(groups: pd.DataFrame, meta: pd.DataFrame, keep: str = "first") -> dict[int, int]:
    """{group: the row `keep` keeps} for every group of `groups` (what `dedup` returns: group, row,
    ...); `meta` the metadata of the indexed rows in index order (width, height, bytes, mtime), as
    the index's stores hold it."""
    rank = preference(meta, keep)
    kept = {}
    for group, members in groups.groupby("group", sort=True):
        rows = members["row"].to_numpy()
        kept[int(group)] = int(rows[rank[rows].argmin()])
    return kept


def preference(meta: pd.DataFrame, keep: str = "first") -> np.ndarray:
    """Each indexed row's rank under `keep` (0: kept before every other row); `meta` as in `kept_rows`."""
    if keep not in KEEP:
        raise MsfkitError(f"--keep must be one of {', '.join(KEEP)}, not {keep!r}")
    rows = np.arange(len(meta))
    if keep == "first":
        keys: tuple[np.ndarray, ...] = (rows,)
    elif keep == "largest":
        pixels = meta["width"].to_numpy(np.int64) * meta["height"].to_numpy(np.int64)
        keys = (rows, -meta["bytes"].to_numpy(np.int64), -pixels)  # lexsort: the last key first
    else:
        keys = (rows, -meta["mtime"].to_numpy(np.float64))
    rank = np.empty(len(meta), dtype=np.int64)
    rank[np.lexsort(keys)] = rows
    return rank


def keep_fraction(
    fraction: float, a: np.ndarray, b: np.ndarray, scores: np.ndarray, rank: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, stand-in, score) of the images dropped so that ceil(`fraction` x n) of the n ranked rows
    stay, with the kept image that stands in for each and the similarity it was dropped at.

    The edges (a, b, scores) best first, as `SimilarityGraph` holds them: going down them, the closest
    pair whose images are both still kept loses the one `rank` puts later, so the most redundant image
    goes first. A dropped image's stand-in is the image it lost to, or, where that one lost later,
    the image that one lost to, and so on. A user error when the edges run out before the budget
    (every image's k nearest neighbours dropped already): a larger k looks further."""
    n = len(rank)
    if not 0 < fraction <= 1:
        raise MsfkitError(f"--keep-fraction {fraction}: a share of the collection, above 0 and at most 1")
    target = n - math.ceil(fraction * n)
    alive = np.ones(n, dtype=bool)
    partner = np.arange(n)
    dropped, at = [], []
    for i, j, s in zip(a.tolist(), b.tolist(), scores.tolist(), strict=True):
        if len(dropped) == target:
            break
        if alive[i] and alive[j]:
            lose, stay = (i, j) if rank[i] > rank[j] else (j, i)
            alive[lose], partner[lose] = False, stay
            dropped.append(lose)
            at.append(s)
    if len(dropped) < target:
        raise MsfkitError(
            f"--keep-fraction {fraction}: the images' k nearest neighbours run out with {n - len(dropped)} "
            f"of {n} kept; give a larger -k or fraction"
        )
    while not alive[partner].all():  # a chain of losses ends at an image still kept
        partner = np.where(alive[partner], partner, partner[partner])
    rows = np.array(dropped, dtype=np.int64)
    return rows, partner[rows], np.array(at, dtype=np.float32)


def removal_list(
    groups: pd.DataFrame, meta: pd.DataFrame, keep: str = "first", chosen: dict[int, int] | None = None
) -> pd.DataFrame:
    """One row per file to remove: its path, its group, the file kept instead and why.

    `keep` decides for every group (see `kept_rows`) except those in `chosen` ({group: row to keep}),
    where a person chose (reason "chosen"); a chosen row must be a member of its group.
    """
    kept = kept_rows(groups, meta, keep)
    for group, row in (chosen or {}).items():
        if row not in set(groups["row"][groups["group"] == group].tolist()):
            raise MsfkitError(f"row {row} is not in group {group}")
        kept[group] = row
    records = []
    for group, members in groups.groupby("group", sort=True):
        best = kept[int(group)]
        reason = "chosen" if group in (chosen or {}) else f"keep {keep}"
        path = dict(zip(members["row"].tolist(), members["path"].tolist(), strict=True))
        records += [
            {"path": p, "group": int(group), "kept": path[best], "reason": reason}
            for r, p in path.items()
            if r != best
        ]
    return pd.DataFrame.from_records(records, columns=COLUMNS)
