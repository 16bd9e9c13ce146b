"""Stores with a planted truth for the curation tests: tight clusters, far points, flipped labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.msfkit.index_stores import write_vector_store

D = 16


def clusters(n_per: int, n_clusters: int, seed: int, spread: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors, cluster of each): `n_per` tight vectors around each of `n_clusters` orthogonal
    centres (the first basis vectors of R^D), so clusters are far apart and each cluster's members close."""
    rng = np.random.default_rng(seed)
    which = np.repeat(np.arange(n_clusters), n_per)
    x = np.eye(D)[which] + spread * rng.standard_normal((len(which), D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), which


def with_far_points(x: np.ndarray, far: int) -> tuple[np.ndarray, np.ndarray]:
    """(`x` with `far` vectors on axes no cluster uses inserted at random rows, their rows)."""
    rng = np.random.default_rng(1)
    extra = np.eye(D, dtype=np.float32)[D - far :]  # orthogonal to every cluster centre and to each other
    rows = np.sort(rng.choice(len(x) + far, size=far, replace=False))
    out = np.empty((len(x) + far, D), dtype=np.float32)
    keep = np.setdiff1d(np.arange(len(out)), rows)
    out[keep], out[rows] = x, extra
    return out, rows


def labelled_store(root: Path, x: np.ndarray, labels: list[str | None], shard_rows: int = 1000) -> Path:
    """A store of `x` whose rows carry `labels` (as class folders would give them)."""
    return write_vector_store(root, x, labels=labels, shard_rows=shard_rows)


def batch_among_clusters(root: Path) -> tuple[Path, set[int]]:
    """A store of 4 clusters of 400 and, last, 6 foreign vectors close together on an axis no cluster
    uses (a batch of photos among clothes): each other's nearest neighbours."""
    x, _ = clusters(400, 4, seed=0)
    batch = np.eye(x.shape[1])[10] + 0.01 * np.random.default_rng(2).standard_normal((6, x.shape[1]))
    batch /= np.linalg.norm(batch, axis=1, keepdims=True)
    return write_vector_store(root, np.concatenate([x, batch]).astype(np.float32), shard_rows=500), set(
        range(1600, 1606)
    )
