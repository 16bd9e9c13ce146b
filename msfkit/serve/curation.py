"""The server's curation lists: outliers, label issues and leaks between the index's stores, each
computed by `msfkit.curate` / `msfkit.retrieval.leaks` on the first request, then kept, and paged.

    views = CurationViews(index, Rows.of(index), page_limit=200)
    views.page("outliers", page=(0, 20))             # {"view", "total", "k", "more", "items": [...]}
    views.page("outliers", page=(0, 20), score="mahalanobis")
    views.outlier_scores("knn")                       # every row's outlier score, for the map's colours
    views.page("leaks", page=(0, 20), threshold=0.95)

Leaks are between the stores one index holds (`msfkit index TRAIN TEST -o INDEX`): each image of
TEST (the last store, or `test`) with a near copy in another store, as `msfkit dedup TRAIN --against
TEST` finds it. Both images are rows of the index, so the page shows both.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from msfkit.curate import label_issues, outliers
from msfkit.curate.label_issues import DEFAULT_K as LABEL_K
from msfkit.curate.outliers import DEFAULT_K as OUTLIER_K
from msfkit.curate.outliers import SCORES
from msfkit.retrieval.dedup import DEFAULT_THRESHOLD
from msfkit.retrieval.leaks import find_leaks
from msfkit.serve.errors import Refused

if TYPE_CHECKING:
    from msfkit.index.folder import IndexFolder
    from msfkit.serve.rows import Rows

VIEWS = ("outliers", "label-issues", "leaks")
CACHED_LEAKS = 4  # (threshold, test store) answers kept


class CurationViews:
    """Outliers, label issues and leaks of `index` (whose rows are `rows`), made once per index and
    question; `page_limit` is the most items one page may hold."""

    def __init__(self, index: IndexFolder, rows: Rows, page_limit: int) -> None:
        self.index, self.rows, self.page_limit = index, rows, page_limit
        self._tables: dict[tuple, pd.DataFrame] = {}
        self._lock = threading.Lock()  # one computation at a time: they search the index wider

    def table(
        self, view: str, threshold: float = DEFAULT_THRESHOLD, test: int | None = None, score: str = "knn"
    ) -> pd.DataFrame:
        """The whole list of `view` (one of VIEWS), computed on the first request; outliers by
        `score` (one of msfkit.curate.outliers.SCORES), leaks at `threshold` into store `test`."""
        if view not in VIEWS:
            raise Refused(f"no curation view {view!r}: one of {', '.join(VIEWS)}")
        if score not in SCORES:
            raise Refused(f"score={score!r}: one of {', '.join(SCORES)}")
        key: tuple = (view,)  # what the list depends on
        if view == "outliers":
            key = (view, score)
        elif view == "leaks":
            key = (view, round(float(threshold), 6), self._test_store(test))
        with self._lock:
            if key not in self._tables:
                if view == "outliers":
                    self._tables[key] = outliers(self.index, score=score)
                elif view == "label-issues":
                    self._tables[key] = label_issues(self.index)
                else:
                    self._tables[key] = self._leaks(*key[1:])
                    leaks = [k for k in self._tables if k[0] == "leaks"]
                    for old in leaks[:-CACHED_LEAKS]:
                        del self._tables[old]
            return self._tables[key]

    def outlier_scores(self, score: str = "knn") -> np.ndarray:
        """Every row's outlier score by `score` (see msfkit.curate.outliers), in row order."""
        table = self.table("outliers", score=score)
        scores = np.full(len(self.rows), np.nan)
        scores[table["row"].to_numpy()] = table["score"].to_numpy()
        return scores

    def page(
        self,
        view: str,
        page: tuple[int, int],
        threshold: float = DEFAULT_THRESHOLD,
        test: int | None = None,
        score: str = "knn",
    ) -> dict[str, Any]:
        """Items `offset` to `offset + limit` of `view`, each a row's facts with the view's own fields;
        the answer names the question: `k` neighbours (outliers, label issues), the outlier `score`,
        the leaks' `threshold`, `test` store and `stores`."""
        offset, limit = page
        if offset < 0 or not 1 <= limit <= self.page_limit:
            raise Refused(f"offset must be >= 0 and limit between 1 and {self.page_limit}")
        table = self.table(view, threshold, test, score)
        shown = table.iloc[offset : offset + limit]
        items = [self._item(view, line) for line in shown.itertuples(index=False)]
        answer = {"view": view, "total": len(table), "offset": offset, "limit": limit}
        if view == "outliers":
            answer.update(score=score, k=OUTLIER_K)
        elif view == "label-issues":
            answer.update(k=LABEL_K)
        else:
            answer.update(threshold=threshold, test=self._test_store(test), stores=self._stores())
        return dict(answer, more=offset + limit < len(table), items=items)

    def _item(self, view: str, line: Any) -> dict[str, Any]:
        item = self.rows.info(int(line.row))
        if view == "outliers":
            item.update(rank=int(line.rank), score=round(float(line.score), 6), in_degree=int(line.in_degree))
        elif view == "label-issues":
            item.update(
                suggested=line.suggested,
                confidence=round(float(line.confidence), 6),
                self_confidence=round(float(line.self_confidence), 6),
            )
        else:
            item.update(score=round(float(line.score), 6), match=self.rows.hit(int(line.match_row)))
        return item

    def _stores(self) -> list[str]:
        return [str(s["store"]) for s in self.index.info["sources"]]

    def _test_store(self, test: int | None) -> int:
        count = len(self.index.info["sources"])
        if count < 2:
            raise Refused(
                "leaks are between the stores of one index, and this index holds one: build it from both "
                "splits (msfkit index TRAIN TEST -o INDEX) to see the TEST images copied in TRAIN",
                status=409,
            )
        test = count - 1 if test is None else test
        if not 0 <= test < count:
            raise Refused(f"test={test}: the index holds stores 0 to {count - 1}")
        return test

    def _leaks(self, threshold: float, test: int) -> pd.DataFrame:
        """The TEST store's images with a near copy in another of the index's stores (the nearest
        copy when several stores hold one): row and match_row are index rows."""
        stores, source = self._stores(), self.index.rows["source"].to_numpy()
        rows_of = [np.flatnonzero(source == i) for i in range(len(stores))]  # store row -> index row
        found = []
        for train in (i for i in range(len(stores)) if i != test):
            table = find_leaks(stores[train], stores[test], threshold=threshold).table
            found.append(
                pd.DataFrame(
                    {
                        "row": rows_of[test][table["row"].to_numpy()],
                        "match_row": rows_of[train][table["match_row"].to_numpy()],
                        "score": table["score"].to_numpy(),
                    }
                )
            )
        leaks = pd.concat(found, ignore_index=True).sort_values(["score", "row"], ascending=[False, True])
        return leaks.drop_duplicates("row").sort_values("row", kind="stable").reset_index(drop=True)
