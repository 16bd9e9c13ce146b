"""The indexed rows as the server names them: `Rows` (paths, labels, file facts, vectors).

    rows = Rows.of(index)          # looked up once, when the server starts
    rows.path(17)                  # the source file of row 17: the only way the server names a file
    rows.rel[17]                   # the same file relative to the collection's root, as the page shows it
    rows.info(17)                  # {"row", "path", "rel", "name", "label", "folder", "width", ...}
    rows.vectors([17, 3])          # their stored vectors (`Store.take`), in the order asked

`Backend` (search) and the views (dedup, map, curation lists) read rows through this one object.

The collection's root is the source root of the index's store, or, for an index of stores with
different roots, the folder those roots share: a row's `rel` starts with its store's root below it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from msfkit.serve.errors import NotFound

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from msfkit.index.folder import IndexFolder
    from msfkit.store.reader import Store


@dataclass(frozen=True)
class Rows:
    """Every indexed row's file (`paths`; `rel`: relative to the collection's root), label (`labels`,
    None without one), metadata (`meta`: width, height, bytes, mtime, in index order) and the stores
    holding their vectors (`store`)."""

    paths: np.ndarray  # object array of str
    rel: np.ndarray  # object array of str
    labels: np.ndarray
    meta: pd.DataFrame
    store: Store

    @classmethod
    def of(cls, index: IndexFolder) -> Rows:
        """The rows of `index` (index rows are its stores' rows, in order), looked up once: per request,
        reading them from the index's tables costs ~10 ms at 100k rows."""
        paths = np.array(index.absolute_paths(np.arange(len(index))), dtype=object)
        labels = index.rows["label"].to_numpy()
        return cls(paths, relative_paths(index), labels, index.store.meta, index.store)

    def __len__(self) -> int:
        return len(self.paths)

    def check(self, row: int) -> int:
        """`row`, when the index holds it; a `NotFound` (404) that gives the range otherwise."""
        if not 0 <= row < len(self):
            raise NotFound(f"row {row}: the index holds rows 0 to {len(self) - 1}")
        return int(row)

    def path(self, row: int) -> str:
        """The source file of an indexed row: the only way the server ever names a file."""
        return str(self.paths[self.check(row)])

    def hit(self, row: int) -> dict[str, Any]:
        """What a result says about its row: row, path, rel (the path relative to the collection's
        root), name, label (or None) and folder."""
        path, label = self.paths[row], self.labels[row]
        return {
            "row": int(row),
            "path": path,
            "rel": self.rel[row],
            "name": Path(path).name,
            "label": label if isinstance(label, str) else None,
            "folder": Path(path).parent.name,
        }

    def info(self, row: int) -> dict[str, Any]:
        """`hit` with the file's width, height and bytes."""
        row = self.check(row)
        facts = self.meta.iloc[row]
        return dict(
            self.hit(row), width=int(facts["width"]), height=int(facts["height"]), bytes=int(facts["bytes"])
        )

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """The stored vectors of `rows` (checked), in the order given: (len(rows), D) float32."""
        wanted = np.array([self.check(r) for r in rows], dtype=np.int64)
        unique, order = np.unique(wanted, return_inverse=True)
        return self.store.take(unique)[order]


def relative_paths(index: IndexFolder) -> np.ndarray:
    """Each row's path relative to the collection's root: its store's source root, or the folder
    the roots of all the index's stores share (each row's path then starts with its root below it)."""
    roots = [str(s.get("source_root") or "") for s in index.info["sources"]]
    below = [""] * len(roots)
    if len(set(roots)) > 1:
        try:
            shared = posixpath.commonpath(roots)
            below = [posixpath.relpath(root, shared) if root != shared else "" for root in roots]
        except ValueError:  # roots with nothing in common (relative and absolute): each store by its root
            below = roots
    prefix = np.array(below, dtype=object)[index.rows["source"].to_numpy()]
    rel = index.rows["path"].to_numpy(dtype=object)
    return np.array(
        [posixpath.join(p, r) if p else r for p, r in zip(prefix, rel, strict=True)], dtype=object
    )
