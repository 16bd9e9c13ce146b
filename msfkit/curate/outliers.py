"""Images that do not belong: far from their nearest neighbours, and few images' neighbour.

    outliers("index", k=10, top=20)   # DataFrame: rank, row, path, label, score, in_degree

`score` is the mean cosine distance (1 - similarity) to the image's k nearest other images: an image
among others like it scores near 0, one unlike anything in the collection near 1. `in_degree` counts
the images that have it among their own k nearest: a foreign image is rarely anyone's neighbour (the
"hubness" view of the same question), so it is listed beside the score, as a second witness.
Rows are ranked by score, highest first; ties by the lower in-degree, then by row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from msfkit.curate.neighbours import Source, neighbour_blocks, opened, source_name
from msfkit.models.errors import MsfkitError

DEFAULT_K = 10
COLUMNS = ("rank", "row", "path", "label", "score", "in_degree")


def outliers(
    source: Source, k: int | None = None, top: int | None = None, progress: bool = False
) -> pd.DataFrame:
    """Every image of `source` (an index folder or an embedding store), most foreign first, or the
    `top` most foreign: rank (from 1), row, path, label, score, in_degree; `k` neighbours looked at,
    DEFAULT_K unless given."""
    k = DEFAULT_K if k is None else k
    if top is not None and top < 1:
        raise MsfkitError(f"top must be >= 1, not {top}")
    with opened(source) as index:
        n = len(index)
        score = np.empty(n, dtype=np.float64)
        in_degree = np.zeros(n, dtype=np.int64)
        for start, sims, rows, valid in neighbour_blocks(index, k, source_name(source), progress, "outliers"):
            found = valid.sum(axis=1)
            total = np.where(valid, sims, 0).sum(axis=1, dtype=np.float64)
            mean = np.divide(total, found, out=np.full(len(found), np.nan), where=found > 0)
            score[start : start + len(sims)] = 1.0 - mean  # NaN (ranked last) where none was found
            in_degree += np.bincount(rows[valid], minlength=n)
        order = np.lexsort((np.arange(n), in_degree, -score))[:top]
        return pd.DataFrame(
            {
                "rank": np.arange(1, len(order) + 1),
                "row": order,
                "path": index.absolute_paths(order),
                "label": index.rows["label"].to_numpy()[order],
                "score": score[order],
                "in_degree": in_degree[order],
            },
            columns=list(COLUMNS),
        )
