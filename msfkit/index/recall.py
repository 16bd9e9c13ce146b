"""Recall@10 of an index against exact search on held-out queries; the search parameters reaching a target.

At build time the queries are random stored rows that are kept out of the index's training sample
and added to the index only after it has been measured: while it is measured they are vectors it
has never seen, and their exact neighbours are the other rows (found by a streaming scan of the
store, one block in memory at a time). A found row counts as correct when it is among the exact 10
or scores as high as the exact 10th (ties between duplicate images are not misses). The cheapest
setting is kept whose recall beats the target by two standard errors, so new queries meet it too.

    grid = param_grid(index, "ivf")
    tuned = tune(index, grid, store, rows, target=0.95)  # index without `rows`
    tuned["search_params"], tuned["recall_at_10"], tuned["latency_ms_median"], tuned["qps"]
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import faiss
import numpy as np

from msfkit.index.faiss_ops import normalized, search_index, set_search_params

K = 10
N_QUERIES = 1000  # held-out queries for recall (fewer for small stores)
LATENCY_QUERIES = 200  # single-query searches timed for the median latency
GROUND_TRUTH_BLOCK = 16384  # store rows scored against every query at once
EF_SEARCH = (16, 32, 64, 128, 256, 512, 1024)
TIE_TOLERANCE = 1e-5
PROTOCOL = "held-out stored rows: not in the training sample, added to the index after measuring"


def query_rows(n: int, seed: int) -> np.ndarray:
    """The sorted rows used as recall queries for a store of `n` vectors (the same for the same seed)."""
    count = min(N_QUERIES, max(1, n - 1), max(10, n // 10))
    return np.sort(np.random.default_rng(seed).choice(n, size=count, replace=False))


def param_grid(index: Any, kind: str) -> list[dict[str, int]]:
    """Search parameters to try, cheapest first."""
    if kind == "hnsw":
        return [{"efSearch": ef} for ef in EF_SEARCH]
    if kind in ("ivf", "ivfpq"):
        nlist = faiss.extract_index_ivf(index).nlist
        probes = [2**i for i in range(int(np.log2(nlist)) + 1)]
        return [{"nprobe": p} for p in sorted(set(probes) | {nlist})]
    return [{}]


def tune(index: Any, grid: list[dict[str, int]], store, rows: np.ndarray, target: float) -> dict[str, Any]:
    """Try `grid` cheapest first; keep the first setting whose recall@10 reaches `target` by a margin.

    The margin is two standard errors of the measured recall, so that new queries, not only these,
    reach the target. `index` holds every row of `store` except `rows`, whose vectors are the
    queries. Returns search_params, recall_at_10 (and its standard error), target, target_met, the
    tuning curve, and the median single-query latency (ms) and batch queries/s at the chosen setting.
    """
    queries, truth = ground_truth(store, rows, exclude=rows)
    curve, chosen = [], grid[-1]
    for params in grid:
        set_search_params(index, params)
        per_query = per_query_recall(index, store, queries, truth)
        r, se = float(per_query.mean()), _standard_error(per_query)
        curve.append({**params, "recall": round(r, 4), "se": round(se, 4)})
        if r - 2 * se >= target or r == 1.0:
            chosen = params
            break
    set_search_params(index, chosen)
    point = next(c for c in curve if all(c[k] == v for k, v in chosen.items()))
    latency, qps = measure_speed(index, queries)
    return {
        "search_params": chosen,
        "k": K,
        "recall_at_10": point["recall"],
        "recall_se": point["se"],
        "target": target,
        "target_met": point["recall"] >= target,
        "queries": len(rows),
        "protocol": PROTOCOL,
        "tuning": curve,
        "latency_ms_median": round(latency, 4),
        "qps": round(qps, 1),
        "stale": False,
    }


def measure_recall(index, queries: np.ndarray) -> float:
    """Recall@10 of a loaded `msfkit.index.folder.IndexFolder` for query vectors it does not hold
    (re-checking). The exact neighbours come from the stores the index was built from."""
    store = index.store
    q = normalized(queries)
    _, truth = ground_truth(store, np.zeros(0, np.int64), exclude=np.zeros(0, np.int64), queries=q)
    return float(per_query_recall(index.index, store, q, truth).mean())


def ground_truth(
    store, rows: np.ndarray, exclude: np.ndarray, queries: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(queries, (exact scores, exact rows)): the vectors of `rows` (or `queries`) against every
    stored row except the sorted rows `exclude`."""
    if queries is None:
        queries = normalized(store.take(rows))
    k = min(K, len(store) - len(exclude))
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    if k == 0:
        return queries, (best_s, best_i)
    for start, block in store.iter_batches(GROUND_TRUTH_BLOCK):
        scores = queries @ normalized(block).T
        inside = exclude[(exclude >= start) & (exclude < start + len(block))]
        scores[:, inside - start] = -np.inf
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, top + start], axis=1)
        keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
    return queries, (best_s, best_i)


def per_query_recall(index: Any, store, queries: np.ndarray, truth) -> np.ndarray:
    """For each query, the fraction of its exact neighbours that the index finds."""
    true_s, true_i = truth
    k = true_i.shape[1]
    if k == 0:
        return np.ones(len(queries))
    _, found = index.search(queries, k)
    valid = found >= 0
    ids = np.unique(found[valid])
    vectors = store.take(ids)
    exact = np.full(found.shape, -np.inf, dtype=np.float32)
    pos = np.searchsorted(ids, found[valid])
    exact[valid] = np.einsum("ij,ij->i", vectors[pos] / _norms(vectors[pos]), queries[np.nonzero(valid)[0]])
    hit = (found[:, :, None] == true_i[:, None, :]).any(axis=2)
    hit |= exact >= true_s[:, -1:] - TIE_TOLERANCE
    return (hit & valid).sum(axis=1) / k


def measure_speed(index: Any, queries: np.ndarray) -> tuple[float, float]:
    """(median single-query latency in ms, queries per second of one batch search) for k=10."""
    times = []
    for q in queries[:LATENCY_QUERIES]:
        t = time.perf_counter()
        search_index(index, q[None], K)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    index.search(queries, K)
    return statistics.median(times) * 1000, len(queries) / max(time.perf_counter() - t, 1e-9)


def _standard_error(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def _norms(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(n > 0, n, 1)
