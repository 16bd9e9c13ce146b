"""`Index`: an index folder you can search with images, paths, store rows or vectors, and dedup.

index = msfkit.open_index("index")
results = index.search(Image.open("cat.jpg"), k=10)     # or paths, folders, "STORE:0-9", vectors
groups = index.dedup(threshold=0.95)
index.add("new-store")                                   # and it is reopened with the new rows
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from msfkit.index.folder import IndexFolder, open_folder
from msfkit.retrieval.search import search

if TYPE_CHECKING:
    import pandas as pd

    from msfkit.models import Encoder


class Index(IndexFolder):
    """A loaded index folder with search and dedup that speak images and DataFrames."""

    def search(
        self, queries: Any, k: int = 10, *, model: Encoder | str | None = None, device: str | None = None
    ) -> pd.DataFrame:
        """The `k` nearest indexed images of every query (see `msfkit.retrieval.search`)."""
        return search(self, queries, k=k, model=model, device=device)

    def dedup(
        self, threshold: float | None = None, k: int | None = None, *, progress: bool = False
    ) -> pd.DataFrame:
        """Near-duplicate groups at cosine >= `threshold` (see `msfkit.retrieval.dedup`; None: its
        DEFAULT_THRESHOLD and DEFAULT_K, 0.95 and 10). Loaded when first called: a search needs
        neither it nor pandas."""
        from msfkit.retrieval import dedup as dd  # loads pandas

        threshold = dd.DEFAULT_THRESHOLD if threshold is None else threshold
        return dd.dedup(self, threshold=threshold, k=dd.DEFAULT_K if k is None else k, progress=progress)

    def add(
        self, stores: str | os.PathLike | Sequence[str | os.PathLike], *, progress: bool = False
    ) -> Index:
        """Add the vectors of other stores to this index folder; returns the folder reopened."""
        from msfkit.index.add import add_to_index  # loads pandas

        add_to_index(self.where, stores, progress=progress)
        return open_index(self.where)


def open_index(path: str | os.PathLike) -> Index:
    """Open an index folder (or an index at a URL, read from a local copy), refusing one with missing,
    foreign or inconsistent files."""
    return open_folder(path, Index)
