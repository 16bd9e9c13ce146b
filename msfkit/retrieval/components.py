"""Connected components of a graph given as edge arrays, for dedup groups and the calibration's copies."""

from __future__ import annotations

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
