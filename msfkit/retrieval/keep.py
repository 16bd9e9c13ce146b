"""Which file of each near-duplicate group to keep, and so which to remove: a list, never a deletion.

    removals = removal_list(groups, store.meta, keep="largest")   # path, group, kept, reason

`first`: the first in index order (the order the files were embedded in); `largest`: the most
pixels, then the most bytes; `newest`: the latest modification time. Ties go to the first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from msfkit.models.errors import MsfkitError

KEEP = ("first", "largest", "newest")
COLUMNS = ("path", "group", "kept", "reason")


def kept_rows(groups: pd.DataFrame, meta: pd.DataFrame, keep: str = "first") -> dict[int, int]:
    """{group: the row `keep` keeps} for every group of `groups` (what `dedup` returns: group, row,
    ...); `meta` the metadata of the indexed rows in index order (width, height, bytes, mtime), as
    the index's stores hold it."""
    if keep not in KEEP:
        raise MsfkitError(f"--keep must be one of {', '.join(KEEP)}, not {keep!r}")
    kept = {}
    for group, members in groups.groupby("group", sort=True):
        rows = members["row"].to_numpy()
        facts = meta.iloc[rows].reset_index(drop=True)
        if keep == "first":
            best = int(rows.argmin())
        elif keep == "largest":
            pixels = facts["width"].to_numpy(np.int64) * facts["height"].to_numpy(np.int64)
            size = facts["bytes"].to_numpy(np.int64)
            best = min(range(len(rows)), key=lambda i: (-pixels[i], -size[i], i))
        else:
            best = int(facts["mtime"].to_numpy().argmax())
        kept[int(group)] = int(rows[best])
    return kept


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
