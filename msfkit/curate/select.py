"""Subsets that stand for the collection: N images chosen to cover it, to sit at its centres, or at random.

    chosen = select("index", budget=100, strategy="coverage")
    chosen.rows      # DataFrame: row, path, label, in the order chosen
    chosen.radius    # the coverage radius: the farthest any image lies from its nearest chosen one

Strategies (distances are cosine distances, 1 - similarity):
- `coverage`: greedy k-center (farthest-point sampling, Lightly's coreset): from a random first
  image, each next image is the one farthest from all chosen so far; the greedy order is kept, so
  any prefix is itself a covering subset. One streaming pass over the vectors per chosen image.
- `centres`: the images nearest the centroids of a spherical k-means with `budget` clusters (faiss,
  seeded by k-means++, trained on a sample of at most MAX_POINTS_PER_CENTROID images per cluster);
  each centroid gets the nearest image no nearer centroid took, found through the index.
- `random`: `budget` images drawn without replacement.

Every strategy reports its coverage radius, measured the same way (a streaming pass of every vector
against the chosen ones), so strategies compare on one number. The same `seed` chooses the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
import pandas as pd
from tqdm import tqdm

from msfkit.curate.neighbours import BLOCK_ROWS, Source, opened, source_name
from msfkit.index.faiss_ops import normalized
from msfkit.index.folder import IndexFolder
from msfkit.models.errors import MsfkitError

STRATEGIES = ("coverage", "centres", "random")
MAX_POINTS_PER_CENTROID = 256  # faiss's own default sample per cluster
KMEANS_ITERATIONS = 20
FIRST_CANDIDATES = 16  # images asked for per centroid at first; doubled for centroids left without one


@dataclass(frozen=True)
class Selection:
    """What `select` chose: `rows` (row, path, label, in the order chosen), the `strategy`, and the
    coverage `radius` (the largest cosine distance from any image to its nearest chosen image)."""

    strategy: str
    rows: pd.DataFrame
    radius: float

    def __len__(self) -> int:
        return len(self.rows)


def select(
    source: Source, budget: int, strategy: str = "coverage", seed: int = 0, progress: bool = False
) -> Selection:
    """`budget` images of `source` (an index folder or an embedding store) chosen by `strategy`."""
    if strategy not in STRATEGIES:
        raise MsfkitError(f"strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
    with opened(source) as index:
        if not 1 <= budget <= len(index):
            raise MsfkitError(
                f"budget {budget}: between 1 and the {len(index)} images of {source_name(source)}"
            )
        rng = np.random.default_rng(seed)
        if strategy == "coverage":
            rows = greedy_k_center(index, budget, rng, progress)
        elif strategy == "centres":
            rows = kmeans_centres(index, budget, rng)
        else:
            rows = rng.choice(len(index), size=budget, replace=False)
        rows = np.asarray(rows, dtype=np.int64)
        table = pd.DataFrame(
            {"row": rows, "path": index.absolute_paths(rows), "label": index.rows["label"].to_numpy()[rows]}
        )
        return Selection(strategy, table, coverage_radius(index, rows))


def coverage_radius(index: IndexFolder, rows: np.ndarray) -> float:
    """The largest cosine distance from an indexed image to the nearest of `rows` (one streaming pass)."""
    chosen = faiss.IndexFlatIP(index.dim)
    chosen.add(normalized(index.store.take(np.unique(rows))))
    worst = 0.0  # not below: an image chosen itself may read -1e-7
    for _, block in index.store.iter_batches(BLOCK_ROWS):
        sims, _ = chosen.search(normalized(block), 1)
        worst = max(worst, float(1.0 - sims.min()))
    return worst


def greedy_k_center(index: IndexFolder, budget: int, rng: np.random.Generator, progress: bool) -> list[int]:
    """Farthest-point sampling: a random first image, then each time the image farthest from all
    chosen so far (its distance kept per image and lowered with each new centre: N floats)."""
    store = index.store
    nearest = np.full(len(index), np.inf)
    chosen = [int(rng.integers(len(index)))]
    for _ in tqdm(range(budget - 1), desc="select", unit="img", disable=not progress, leave=False):
        centre = normalized(store.take(np.array(chosen[-1:])))[0]
        for start, block in store.iter_batches(BLOCK_ROWS):
            part = nearest[start : start + len(block)]  # a view: lowered in place
            np.minimum(part, 1.0 - normalized(block) @ centre, out=part)
        nearest[chosen[-1]] = -np.inf  # never chosen twice, even among exact copies
        chosen.append(int(np.argmax(nearest)))
    return chosen


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k rows of the unit vectors `x` as k-means++ seeds: each next row drawn with a probability
    proportional to its squared distance to the nearest row drawn so far (Arthur & Vassilvitskii),
    so that far-apart groups each get a seed where uniform seeds often put two in one group."""
    seeds = [int(rng.integers(len(x)))]
    d2 = np.full(len(x), np.inf)
    for _ in range(k - 1):
        d2 = np.minimum(d2, np.maximum(2.0 - 2.0 * (x @ x[seeds[-1]]), 0.0))
        d2[seeds[-1]] = 0.0
        weights = d2 if d2.sum() > 0 else np.isin(np.arange(len(x)), seeds, invert=True) * 1.0  # all alike
        seeds.append(int(rng.choice(len(x), p=weights / weights.sum())))
    return np.array(seeds)


def kmeans_centres(index: IndexFolder, budget: int, rng: np.random.Generator) -> list[int]:
    """The image nearest each centroid of a spherical k-means with `budget` clusters, each image taken
    by one centroid only: pairs taken most similar first; centroids left without one ask for more."""
    n = len(index)
    rows = np.sort(rng.choice(n, size=min(n, budget * MAX_POINTS_PER_CENTROID), replace=False))
    sample = normalized(index.store.take(rows))
    settings = {"niter": KMEANS_ITERATIONS, "spherical": True, "seed": int(rng.integers(2**31))}
    sizes = {"max_points_per_centroid": MAX_POINTS_PER_CENTROID, "min_points_per_centroid": 1}  # no warning
    kmeans = faiss.Kmeans(index.dim, budget, **sizes, **settings)
    kmeans.train(sample, init_centroids=sample[kmeans_plus_plus(sample, budget, rng)])
    image_of: dict[int, int] = {}  # centroid -> its image
    taken: set[int] = set()
    waiting, k = np.arange(budget), min(n, FIRST_CANDIDATES)
    while len(waiting):
        sims, found = index.search_vectors(kmeans.centroids[waiting], k)
        for flat in np.argsort(-sims, axis=None, kind="stable"):  # the most similar pairs first
            c, j = divmod(int(flat), k)
            centroid, image = int(waiting[c]), int(found[c, j])
            if image >= 0 and image not in taken and centroid not in image_of:
                image_of[centroid] = image
                taken.add(image)
        if k == n:  # an approximate index may not reach every image: those centroids stay empty
            break
        waiting, k = np.array([c for c in waiting if c not in image_of], dtype=np.int64), min(n, 2 * k)
    return [image_of[c] for c in sorted(image_of)]
