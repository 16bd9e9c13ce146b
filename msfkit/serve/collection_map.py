"""The map of the collection: every indexed row as a point (`msfkit.serve.projection`), its colours,
and the rows a lasso drawn round some of them holds.

    view = MapView(rows, duplicates, curation, page_limit=200)
    view.points("pca")                       # a Projection, made on the first request, then kept
    view.colours("label")                    # {"by", "kind", "names", "values"}: one value per row
    view.inside("pca", [[0, 0], [1, 0], [0, 1]])     # the rows whose points lie inside the polygon
    view.selection("pca", polygon, page=(0, 60))     # those rows, and a page of their facts

The points go to the page as the bytes of a little-endian float32 array (x0, y0, x1, y1, ...) in
base64: 8 bytes a row, read straight into a Float32Array. Colours are one value per row: a category
number (label or folder; duplicate group, -1 for none) or a score (outliers).
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from msfkit.serve.errors import Refused
from msfkit.serve.projection import Projection, available_methods, project

if TYPE_CHECKING:
    from msfkit.serve.curation import CurationViews
    from msfkit.serve.duplicates import DuplicatesView
    from msfkit.serve.rows import Rows

COLOUR_BY = ("label", "group", "outlier")
MOST_VERTICES = 1000  # of a lasso


class MapView:
    """The map of `rows`, coloured from `duplicates` (groups) and `curation` (outlier scores);
    `page_limit` is the most rows of a selection one page may describe."""

    def __init__(
        self, rows: Rows, duplicates: DuplicatesView, curation: CurationViews, page_limit: int
    ) -> None:
        self.rows, self.duplicates, self.curation = rows, duplicates, curation
        self.page_limit = page_limit
        self._projections: dict[str, Projection] = {}
        self._lock = threading.Lock()

    def points(self, method: str) -> Projection:
        """Every row's point by `method` (computed once per method, then kept)."""
        with self._lock:
            if method not in self._projections:
                self._projections[method] = project(self.rows.store, method)
            return self._projections[method]

    def answer(self, method: str) -> dict[str, Any]:
        """What `GET /api/map` sends: the points (base64 float32 pairs) and how they were made."""
        projection = self.points(method)
        data = np.ascontiguousarray(projection.points, dtype="<f4").tobytes()
        return {
            "method": projection.method,
            "methods": available_methods(),
            "count": len(projection.points),
            "explained": list(projection.explained),
            "points": base64.b64encode(data).decode("ascii"),
        }

    def colours(self, by: str, threshold: float = 0.95, k: int = 10, score: str = "knn") -> dict[str, Any]:
        """One value per row: its label (or folder) number, its duplicate group at `threshold` (-1 for
        none), or its outlier score by `score`; `names` are the labels, `total` the groups."""
        if by == "label":
            labels = [lab if isinstance(lab, str) else Path(p).parent.name for lab, p in self._labelled()]
            codes, names = pd.factorize(pd.Series(labels, dtype=object), sort=True)
            return {"by": by, "kind": "category", "names": list(names), "values": codes.tolist()}
        if by == "group":
            groups = self.duplicates.groups(threshold, k)
            values = np.full(len(self.rows), -1, dtype=np.int64)
            rows, group = (groups[c].to_numpy(dtype=np.int64) for c in ("row", "group"))  # int even if empty
            values[rows] = group
            total = int(groups["group"].nunique()) if len(groups) else 0
            return {
                "by": by,
                "kind": "group",
                "threshold": threshold,
                "total": total,
                "values": values.tolist(),
            }
        if by == "outlier":
            scores = self.curation.outlier_scores(score)
            values = [None if np.isnan(s) else round(float(s), 4) for s in scores]
            return {"by": by, "kind": "score", "score": score, "values": values}
        raise Refused(f"by={by!r}: one of {', '.join(COLOUR_BY)}")

    def inside(self, method: str, polygon: list[list[float]]) -> np.ndarray:
        """The rows whose points by `method` lie inside `polygon` ([x, y] vertices, in map units)."""
        if not 3 <= len(polygon) <= MOST_VERTICES:
            raise Refused(f"a lasso has 3 to {MOST_VERTICES} vertices, not {len(polygon)}")
        return np.flatnonzero(
            inside_polygon(self.points(method).points, np.asarray(polygon, dtype=np.float64))
        )

    def selection(self, method: str, polygon: list[list[float]], page: tuple[int, int]) -> dict[str, Any]:
        """The rows inside `polygon` (all of them, as numbers) and the facts of `page` of them."""
        offset, limit = page
        if offset < 0 or not 1 <= limit <= self.page_limit:
            raise Refused(f"offset must be >= 0 and limit between 1 and {self.page_limit}")
        rows = self.inside(method, polygon)
        items = [self.rows.info(int(r)) for r in rows[offset : offset + limit]]
        return {
            "method": method,
            "total": len(rows),
            "rows": rows.tolist(),
            "offset": offset,
            "limit": limit,
            "more": offset + limit < len(rows),
            "items": items,
        }

    def _labelled(self):
        return zip(self.rows.labels.tolist(), self.rows.paths.tolist(), strict=True)


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Whether each (x, y) of `points` lies inside `polygon` (closed, edges may cross: the even-odd
    rule): a ray from the point to the right crosses the polygon's edges an odd number of times."""
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    odd = np.zeros(len(points), dtype=bool)
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        spans = (y1 > y) != (y2 > y)  # the edge spans the point's height (never a horizontal edge)
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        odd ^= spans & (x < crossing)
    return odd
