"""Which file of each near-duplicate group to keep, and so which to remove: a list, never a deletion.

    removals = removal_list(groups, store.meta, keep="largest")   # path, group, kept, reason

`first`: the first in index order (the order the files were embedded in); `largest`: the most
pixels, then the most bytes; `newest`: the latest modification time. Ties go to the first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from msfkit.models.errors import MsfkitError

if TYPE_CHECKING:
    import pandas as pd

KEEP = ("first", "largest", "newest")
COLUMNS = ("path", "group", "kept", "reason")


def removal_list(groups: pd.DataFrame, meta: pd.DataFrame, keep: str = "first") -> pd.DataFrame:
    """One row per file to remove: its path, its group, the file kept instead and why.

    `groups` is what `dedup` returns (group, row, path, ...); `meta` the metadata of the indexed
    rows in index order (width, height, bytes, mtime), as the index's stores hold it.
    """
    import pandas as pd

    if keep not in KEEP:
        raise MsfkitError(f"--keep must be one of {', '.join(KEEP)}, not {keep!r}")
    rows = []
    for group, members in groups.groupby("group", sort=True):
        facts = meta.iloc[members["row"].to_numpy()].reset_index(drop=True)
        members = members.reset_index(drop=True)
        if keep == "first":
            best = int(members["row"].to_numpy().argmin())
        elif keep == "largest":
            pixels = facts["width"].to_numpy(np.int64) * facts["height"].to_numpy(np.int64)
            size = facts["bytes"].to_numpy(np.int64)
            best = min(range(len(members)), key=lambda i: (-pixels[i], -size[i], i))
        else:
            best = int(facts["mtime"].to_numpy().argmax())
        kept = members["path"][best]
        rows += [{"path": members["path"][i], "group": int(group), "kept": kept, "reason": f"keep {keep}"}
                 for i in range(len(members)) if i != best]  # fmt: skip
    return pd.DataFrame.from_records(rows, columns=COLUMNS)
