"""Two ways to group a similarity graph given as edge arrays: connected components (a chain of near
pairs is one group; dedup's default and the calibration's copies) and centre groups (one
representative, and only images near IT: no chains)."""

from __future__ import annotations

import heapq

import numpy as np


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The root of each of `n` rows once the edges (a, b) are joined: the smallest row of its component.

    Union-find over all edges at once: every pass hooks the larger root of each edge under the
    smaller one, then compresses paths until every row points at a root. A parent is never larger
    than its row, so there are no cycles, and each pass that changes anything removes roots."""
    parent = np.arange(n)
    while True:
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            return parent
        lo, hi = np.minimum(ra, rb)[differ], np.maximum(ra, rb)[differ]
        np.minimum.at(parent, hi, lo)
        while True:
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up


def centre_groups(n: int, a: np.ndarray, b: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, score) of each of `n` rows: the row of its group's centre (-1 outside every group) and
    its similarity to that centre (a centre's own: its best to a member).

    The edges (a, b, scores) are taken both ways. Greedy, as FiftyOne's and fastdup's non-chaining
    modes: the row with the most ungrouped neighbours becomes a centre and takes them all, then the
    next (ties to the smaller row), until no ungrouped row has an ungrouped neighbour. Every member
    is joined to its centre by an edge, so a chain a~b~c~d splits where connected components join it.
    """
    src, dst, sim = np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([scores, scores])
    order = np.lexsort((-sim, dst, src))  # by row, then neighbour, the best score of a pair first
    src, dst, sim = src[order], dst[order], sim[order]
    first = np.ones(len(src), dtype=bool)
    first[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    src, dst, sim = src[first], dst[first], sim[first]  # each pair once
    start = np.searchsorted(src, np.arange(n + 1))
    centre = np.full(n, -1, dtype=np.int64)
    score = np.full(n, -np.inf, dtype=np.float32)
    heap = [(-int(start[r + 1] - start[r]), r) for r in np.nonzero(np.diff(start))[0].tolist()]
    heapq.heapify(heap)
    while heap:  # a queued count is never below the row's true count: requeue it when it fell
        count, row = heapq.heappop(heap)
        near, near_scores = dst[start[row] : start[row + 1]], sim[start[row] : start[row + 1]]
        free = centre[near] < 0
        if centre[row] >= 0 or not free.any():
            continue
        if int(free.sum()) < -count:
            heapq.heappush(heap, (-int(free.sum()), row))
            continue
        centre[near[free]] = row
        score[near[free]] = near_scores[free]
        centre[row], score[row] = row, near_scores[free].max()
    return centre, score
