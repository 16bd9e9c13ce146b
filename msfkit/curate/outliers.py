"""Images that do not belong: far from their nearest neighbours, and few images' neighbour.

    outliers("index", k=10, top=20)   # DataFrame: rank, row, path, label, score, in_degree
    outliers("index", score="mahalanobis")

`score="knn"` (the default) is the mean cosine distance (1 - similarity) to the image's k nearest
other images: an image among others like it scores near 0, one unlike anything in the collection
near 1. `score="mahalanobis"` is the squared Mahalanobis distance of the vector from the whole
collection's mean, under its covariance (eigenvalues floored at RIDGE times the largest): large
where an image lies along directions in which the collection hardly varies. It finds foreign images
that resemble each other (a batch of photos among clothes: each other's nearest neighbours, so near
0 by k-NN) and needs many more images than dimensions; docs/curation.md has the measurements.
`in_degree` counts the images that have it among their own k nearest: a foreign image is rarely
anyone's neighbour (the "hubness" view of the same question), so it is listed beside the score, as a
second witness. Rows are ranked by score, highest first; ties by the lower in-degree, then by row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from msfkit.curate.neighbours import BLOCK_ROWS, Source, neighbour_blocks, opened, source_name
from msfkit.models.errors import MsfkitError

DEFAULT_K = 10
COLUMNS = ("rank", "row", "path", "label", "score", "in_degree")
SCORES = ("knn", "mahalanobis")
RIDGE = 1e-4  # the covariance's eigenvalues floored at this share of the largest (docs/curation.md)


def outliers(
    source: Source,
    k: int | None = None,
    top: int | None = None,
    progress: bool = False,
    score: str = "knn",
) -> pd.DataFrame:
    """Every image of `source` (an index folder or an embedding store), most foreign first, or the
    `top` most foreign: rank (from 1), row, path, label, score, in_degree; `k` neighbours looked at,
    DEFAULT_K unless given; `score` one of SCORES (see the module docstring)."""
    k = DEFAULT_K if k is None else k
    if top is not None and top < 1:
        raise MsfkitError(f"top must be >= 1, not {top}")
    if score not in SCORES:
        raise MsfkitError(f"unknown outlier score {score!r}; expected one of {', '.join(SCORES)}")
    with opened(source) as index:
        n = len(index)
        scores = np.empty(n, dtype=np.float64)
        in_degree = np.zeros(n, dtype=np.int64)
        for start, sims, rows, valid in neighbour_blocks(index, k, source_name(source), progress, "outliers"):
            in_degree += np.bincount(rows[valid], minlength=n)  # for either score: the second witness
            if score == "knn":
                found = valid.sum(axis=1)
                total = np.where(valid, sims, 0).sum(axis=1, dtype=np.float64)
                mean = np.divide(total, found, out=np.full(len(found), np.nan), where=found > 0)
                scores[start : start + len(sims)] = 1.0 - mean  # NaN (ranked last) where none was found
        if score == "mahalanobis":
            scores = mahalanobis(index.store, source_name(source))
        order = np.lexsort((np.arange(n), in_degree, -scores))[:top]
        return pd.DataFrame(
            {
                "rank": np.arange(1, len(order) + 1),
                "row": order,
                "path": index.absolute_paths(order),
                "label": index.rows["label"].to_numpy()[order],
                "score": scores[order],
                "in_degree": in_degree[order],
            },
            columns=list(COLUMNS),
        )


def mahalanobis(store, name: str) -> np.ndarray:
    """The squared Mahalanobis distance of every vector of `store` from their mean, under their
    covariance with its eigenvalues floored at RIDGE times the largest: two passes over the vectors,
    block by block (memory: one block and a D x D matrix)."""
    n, dim = len(store), store.dim
    if n <= dim:
        raise MsfkitError(
            f"{name}: {n} images of {dim} dimensions; the mahalanobis score needs more images than "
            "dimensions (use --score knn)"
        )
    total, gram = np.zeros(dim), np.zeros((dim, dim))
    for _, block in store.iter_batches(BLOCK_ROWS):
        block = block.astype(np.float64)
        total += block.sum(axis=0)
        gram += block.T @ block
    mean = total / n
    values, vectors = np.linalg.eigh((gram - n * np.outer(mean, mean)) / (n - 1))
    whiten = vectors / np.sqrt(np.maximum(values, 0) + RIDGE * values.max())
    out = np.empty(n)
    for start, block in store.iter_batches(BLOCK_ROWS):
        out[start : start + len(block)] = (((block.astype(np.float64) - mean) @ whiten) ** 2).sum(axis=1)
    return out
