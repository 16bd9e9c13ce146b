"""2-D projections of an index's vectors for the map: PCA always, UMAP with the extra `msfkit[umap]`.

    projected = project(index.store, "pca")     # Projection: points (N, 2) float32, explained variance
    projected.points[17]                        # where row 17 lies on the map

Both stream over the store: the projection is fitted on a sample of at most SAMPLE rows (read with
`Store.take`), then every vector is projected one block at a time (`Store.iter_batches`), so memory
is the sample, one block and the (N, 2) output, never all N vectors. Vectors are scaled to unit
length first, as the index compares them (cosine).

PCA: the mean and the two leading principal axes of the sample (numpy's SVD), each axis's sign
fixed so that its largest coordinate is positive (the same map on every run). UMAP (umap-learn,
cosine metric, fixed seed): fitted on the sample, the other rows placed by `UMAP.transform`; its first
use in a process compiles umap-learn's numba code (a minute on a small CPU).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from msfkit.index.faiss_ops import normalized
from msfkit.serve.errors import Refused

if TYPE_CHECKING:
    from msfkit.store.reader import Store

METHODS = ("pca", "umap")
SAMPLE = 20_000  # rows the projection is fitted on
BLOCK_ROWS = 8192  # rows projected at once
UMAP_NEIGHBOURS = 15  # umap-learn's default
UMAP_MIN_ROWS = 4


@dataclass(frozen=True)
class Projection:
    """Where each row lies on the map (`points`, (N, 2) float32, row order), how it was found
    (`method`), and for PCA the share of the variance each axis explains (`explained`)."""

    method: str
    points: np.ndarray
    explained: tuple[float, ...] = ()


def available_methods() -> list[str]:
    """The methods this installation can project with (UMAP only where umap-learn is installed)."""
    return [m for m in METHODS if m == "pca" or importlib.util.find_spec("umap") is not None]


def project(store: Store, method: str = "pca", seed: int = 0) -> Projection:
    """Every vector of `store` on a 2-D map by `method` ("pca" or "umap")."""
    if method not in METHODS:
        raise Refused(f"method={method!r}: one of {', '.join(METHODS)}")
    if method not in available_methods():
        raise Refused("the UMAP map needs umap-learn: pip install 'msfkit[umap]'", status=409)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(store), size=min(len(store), SAMPLE), replace=False))
    sample = normalized(store.take(rows))
    if method == "pca":
        return _pca(store, sample)
    return _umap(store, rows, sample, seed)


def _pca(store: Store, sample: np.ndarray) -> Projection:
    mean = sample.mean(axis=0, dtype=np.float64)
    _, singular, vt = np.linalg.svd(sample - mean, full_matrices=False)
    axes = np.zeros((2, store.dim))
    axes[: min(2, len(vt))] = vt[:2]
    axes *= np.where(axes[np.arange(2), np.abs(axes).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    variance = singular**2
    explained = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(0)
    points = np.empty((len(store), 2), dtype=np.float32)
    for start, block in store.iter_batches(BLOCK_ROWS):
        points[start : start + len(block)] = (normalized(block) - mean) @ axes.T
    return Projection("pca", points, tuple(round(float(e), 6) for e in explained))


def _umap(store: Store, rows: np.ndarray, sample: np.ndarray, seed: int) -> Projection:
    import umap  # optional extra: umap (umap-learn, and numba under it: seconds to import)

    if len(store) < UMAP_MIN_ROWS:
        raise Refused(f"the UMAP map needs at least {UMAP_MIN_ROWS} images; this index holds {len(store)}")
    neighbours = min(UMAP_NEIGHBOURS, len(sample) - 1)
    reducer = umap.UMAP(  # one job: a fixed seed makes umap-learn run serially anyway
        n_components=2, n_neighbors=neighbours, metric="cosine", random_state=seed, n_jobs=1
    )
    points = np.empty((len(store), 2), dtype=np.float32)
    points[rows] = reducer.fit_transform(sample)
    fitted = np.zeros(len(store), dtype=bool)
    fitted[rows] = True
    for start, block in store.iter_batches(BLOCK_ROWS):
        rest = np.flatnonzero(~fitted[start : start + len(block)])
        if len(rest):
            points[start + rest] = reducer.transform(normalized(block[rest]))
    return Projection("umap", points)
