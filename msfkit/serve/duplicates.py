"""The server's view of an index's near-duplicates: the similarity graph built once, cut at every
threshold asked, paged for the page, with the removal list and the measured threshold.

    view = DuplicatesView(index, Rows.of(index), page_limit=200)
    view.page(0.95, k=10, page=(0, 20), keep="first")    # groups, largest first, with the row kept
    view.removals(0.95, keep="largest", choices={0: 17})   # the removal list, a DataFrame
    view.removals(0.95, marked=[3, 40])                    # ... with rows marked on the map
    view.auto(encoder)                                     # the measured threshold, once, cached

The first dedup request builds the k-NN similarity graph (`msfkit.retrieval.dedup.SimilarityGraph`:
one search per indexed vector) with edges down to `FLOOR`, the slider's lowest value; every
threshold after that is a cut of it (a union-find over the kept edges), the same groups as
`Index.dedup` at that threshold, without searching the index again. Which row each group keeps
and the removal list are `msfkit.retrieval.keep`'s, as for `msfkit dedup --keep`; rows the person
marked elsewhere (the map's lasso) are added to it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import pandas as pd

from msfkit.models.errors import MsfkitError
from msfkit.retrieval.calibrate import calibrate
from msfkit.retrieval.dedup import SimilarityGraph
from msfkit.retrieval.keep import kept_rows, removal_list
from msfkit.serve.errors import Refused

if TYPE_CHECKING:
    from msfkit.index.folder import IndexFolder
    from msfkit.models import Encoder
    from msfkit.serve.rows import Rows

FLOOR = 0.80  # the page's slider goes down to here: the graph keeps edges this similar and more
CUTS = 8  # thresholds whose groups stay in memory
GRAPHS = 2  # graphs (one per k) kept


class DuplicatesView:
    """Dedup groups, the removal list and the auto threshold of `index`, whose rows are `rows`;
    `page_limit` is the most groups one page may hold."""

    def __init__(self, index: IndexFolder, rows: Rows, page_limit: int) -> None:
        self.index, self.rows, self.page_limit = index, rows, page_limit
        self._graphs: OrderedDict[int, SimilarityGraph] = OrderedDict()
        self._cuts: OrderedDict[tuple[float, int], pd.DataFrame] = OrderedDict()
        self._lock = threading.Lock()
        self._auto: dict[str, Any] | None = None
        self._auto_lock = threading.Lock()

    def graph(self, threshold: float, k: int) -> SimilarityGraph:
        """The graph for `k` (built on first use, again only for a threshold below its floor)."""
        graph = self._graphs.get(k)
        if graph is None or threshold < graph.floor:
            graph = SimilarityGraph.build(self.index, floor=min(FLOOR, threshold), k=k)
            self._graphs[k] = graph
            self._cuts = OrderedDict((key, df) for key, df in self._cuts.items() if key[1] != k)
            while len(self._graphs) > GRAPHS:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(k)
        return graph

    def groups(self, threshold: float, k: int = 10) -> pd.DataFrame:
        """The groups at `threshold` (`Index.dedup`'s DataFrame), cached for the last few thresholds."""
        if not -1 <= threshold <= 1:
            raise Refused(f"threshold {threshold}: a cosine similarity, between -1 and 1")
        if not 1 <= k <= 100:
            raise Refused(f"k {k}: between 1 and 100")
        key = (round(float(threshold), 6), int(k))
        with self._lock:  # one graph, one cut per threshold, however many requests ask at once
            if key not in self._cuts:
                self._cuts[key] = self.graph(*key).cut(key[0], paths=self.rows.paths)
                while len(self._cuts) > CUTS:
                    self._cuts.popitem(last=False)
            self._cuts.move_to_end(key)
            return self._cuts[key]

    def page(self, threshold: float, k: int = 10, page: tuple[int, int] = (0, 20), keep: str = "first"):
        """Groups `offset` to `offset + limit` at `threshold`, each with its members and the row that
        `keep` (first | largest | newest, as `msfkit dedup --keep`) would keep."""
        df = self.groups(threshold, k)
        offset, limit = page
        if offset < 0 or not 1 <= limit <= self.page_limit:
            raise Refused(f"offset must be >= 0 and limit between 1 and {self.page_limit}")
        total = int(df["group"].nunique()) if len(df) else 0
        shown = df[(df["group"] >= offset) & (df["group"] < offset + limit)]
        kept = kept_rows(shown, self.rows.meta, keep)
        groups = []
        for group, members in shown.groupby("group", sort=True):
            rows = [
                dict(self.rows.info(r), score=round(s, 6))
                for r, s in zip(members["row"].tolist(), members["score"].tolist(), strict=True)
            ]
            groups.append({"group": int(group), "size": len(rows), "kept": kept[int(group)], "members": rows})
        return {
            "threshold": threshold,
            "k": k,
            "keep": keep,
            "groups_total": total,
            "images": len(df),
            "offset": offset,
            "limit": limit,
            "more": offset + limit < total,
            "groups": groups,
        }

    def removals(
        self, threshold: float, k: int = 10, keep: str = "first", choices=None, marked=()
    ) -> pd.DataFrame:
        """The files to remove (path, group, kept, reason): `keep` decides for every group except those
        in `choices` ({group: row to keep}), where the person chose (`msfkit.retrieval.keep`); then the
        `marked` rows (chosen on the map) not listed yet, with reason "marked" and no group."""
        listed = removal_list(self.groups(threshold, k), self.rows.meta, keep, chosen=choices)
        paths = [self.rows.path(r) for r in dict.fromkeys(marked)]  # each checked, once, in order
        extra = [p for p in paths if p not in set(listed["path"])]
        none = pd.array([pd.NA] * len(extra), dtype="Int64")  # no group, no kept file: empty cells
        extra = pd.DataFrame({"path": extra, "group": none, "kept": None, "reason": "marked"})
        return pd.concat([listed.astype({"group": "Int64"}), extra], ignore_index=True)

    def auto(self, encoder: Encoder, device: str | None = None) -> dict[str, Any]:
        """`msfkit dedup --threshold auto`'s measurement (`msfkit.retrieval.calibrate`) with `encoder`
        (the index's model), made on the first call and kept: the threshold (None when copies and
        distinct images overlap), its explanation and the similarities it was chosen from."""
        with self._auto_lock:
            if self._auto is None:
                self._auto = self._calibration(encoder, device)
            return self._auto

    def _calibration(self, encoder: Encoder, device: str | None) -> dict[str, Any]:
        try:
            cal = calibrate(self.index, model=encoder, device=device)
        except MsfkitError as e:  # e.g. too few images readable: no threshold, and why
            return {"threshold": None, "explanation": str(e), "similarities": None, "images": 0}
        similarities = {
            "copies": cal.copy_similarity,  # 99% of the calibration's copies score at least this
            "re_encoded": cal.mild_similarity,  # 99% of the re-encoded copies alone
            "found_copies": cal.found_copies,  # sampled images with a copy in the collection
            "found": cal.found_similarity,  # the least similar of those copies
            "distinct": cal.distinct_similarity,  # the closest distinct pair ...
            "closest_pair": [
                {"row": r, "path": self.rows.path(r)} for r in cal.closest_rows or ()
            ],  # ... rows
        }
        return {
            "threshold": cal.threshold,
            "explanation": cal.explain(),
            "similarities": similarities,
            "images": cal.images,
        }
