"""The server's near-duplicate groups: the similarity graph built once, cut at every threshold asked.

    dups = Duplicates(backend)
    dups.page(0.95, k=10, page=(0, 20), keep="first")   # groups, largest first, with the row kept
    dups.removals(0.95, keep="largest", choices={0: 17})  # the removal list, a DataFrame
    dups.auto()                                           # the measured threshold, once, cached

The first dedup request builds the k-NN similarity graph (`msfkit.retrieval.dedup.SimilarityGraph`:
one search per indexed vector) with edges down to `FLOOR`, the slider's lowest value; every
threshold after that is a cut of it (a union-find over the kept edges), the same groups as
`Index.dedup` at that threshold, without searching the index again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from msfkit.models.errors import MsfkitError
from msfkit.serve.errors import Refused

if TYPE_CHECKING:
    import pandas as pd

    from msfkit.retrieval.dedup import SimilarityGraph
    from msfkit.serve.backend import Backend

FLOOR = 0.80  # the page's slider goes down to here: the graph keeps edges this similar and more
CUTS = 8  # thresholds whose groups stay in memory
GRAPHS = 2  # graphs (one per k) kept


class Duplicates:
    """Dedup groups, the removal list and the auto threshold of a `Backend`'s index."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._graphs: OrderedDict[int, SimilarityGraph] = OrderedDict()
        self._cuts: OrderedDict[tuple[float, int], pd.DataFrame] = OrderedDict()
        self._lock = threading.Lock()
        self._auto: dict[str, Any] | None = None
        self._auto_lock = threading.Lock()
        self._paths = np.array(backend.paths, dtype=object)  # for cuts: no per-cut path lookups

    def graph(self, threshold: float, k: int) -> SimilarityGraph:
        """The graph for `k` (built on first use, again only for a threshold below its floor)."""
        from msfkit.retrieval.dedup import SimilarityGraph

        graph = self._graphs.get(k)
        if graph is None or threshold < graph.floor:
            graph = SimilarityGraph.build(self.backend.index, floor=min(FLOOR, threshold), k=k)
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
                self._cuts[key] = self.graph(*key).cut(key[0], paths=self._paths)
                while len(self._cuts) > CUTS:
                    self._cuts.popitem(last=False)
            self._cuts.move_to_end(key)
            return self._cuts[key]

    def page(self, threshold: float, k: int = 10, page: tuple[int, int] = (0, 20), keep: str = "first"):
        """Groups `offset` to `offset + limit` at `threshold`, each with its members and the row that
        `keep` (first | largest | newest, as `msfkit dedup --keep`) would keep."""
        from msfkit.retrieval.keep import removal_list

        backend = self.backend
        df = self.groups(threshold, k)
        offset, limit = page
        if offset < 0 or not 1 <= limit <= backend.limits.page:
            raise Refused(f"offset must be >= 0 and limit between 1 and {backend.limits.page}")
        total = int(df["group"].nunique()) if len(df) else 0
        shown = df[(df["group"] >= offset) & (df["group"] < offset + limit)]
        kept = dict(
            zip(*removal_list(shown, backend.meta, keep)[["group", "kept"]].to_numpy().T, strict=True)
        )
        groups = []
        for group, members in shown.groupby("group", sort=True):
            rows = [dict(backend.row_info(int(r)), score=round(float(s), 6))
                    for r, s in zip(members["row"], members["score"], strict=True)]  # fmt: skip
            keep_row = next(m["row"] for m in rows if m["path"] == kept.get(group, rows[0]["path"]))
            groups.append({"group": int(group), "size": len(rows), "kept": keep_row, "members": rows})
        return {
            "threshold": threshold, "k": k, "keep": keep, "groups_total": total, "images": len(df),
            "offset": offset, "limit": limit, "more": offset + limit < total, "groups": groups,
        }  # fmt: skip

    def removals(self, threshold: float, k: int = 10, keep: str = "first", choices=None) -> pd.DataFrame:
        """The files to remove (path, group, kept, reason): `keep` decides for every group except those
        in `choices` ({group: row to keep}), where the person chose."""
        import pandas as pd

        from msfkit.retrieval.keep import COLUMNS, removal_list

        groups = self.groups(threshold, k)
        out = removal_list(groups, self.backend.meta, keep)
        chosen = []
        for group, row in (choices or {}).items():
            members = groups[groups["group"] == group]
            if row not in set(members["row"].tolist()):
                raise Refused(f"row {row} is not in group {group} at threshold {threshold}")
            kept = self.backend.paths[row]
            chosen += [{"path": p, "group": group, "kept": kept, "reason": "chosen"}
                       for r, p in zip(members["row"], members["path"], strict=True) if r != row]  # fmt: skip
        if choices:
            out = out[~out["group"].isin(list(choices))]
            out = pd.concat([out, pd.DataFrame.from_records(chosen, columns=COLUMNS)], ignore_index=True)
        return out.sort_values(["group", "path"], ignore_index=True)

    def auto(self) -> dict[str, Any]:
        """`msfkit dedup --threshold auto`'s measurement (`msfkit.retrieval.calibrate`), made on the
        first request and kept: the threshold (None when copies and distinct images overlap), its
        explanation and the similarities it was chosen from."""
        backend = self.backend
        if backend.encoder is None:
            raise Refused(f"threshold auto embeds copies of images: {backend.model_note}", status=409)
        with self._auto_lock:
            if self._auto is None:
                self._auto = _calibration(backend)
            return self._auto


def _calibration(backend: Backend) -> dict[str, Any]:
    from msfkit.retrieval.calibrate import calibrate

    try:
        cal = calibrate(backend.index, model=backend.encoder, device=backend.device)
    except MsfkitError as e:  # e.g. too few images readable: no threshold, and why
        return {"threshold": None, "explanation": str(e), "similarities": None, "images": 0}
    rows = {path: row for row, path in enumerate(backend.paths)}
    pair = [{"row": rows.get(p), "path": p} for p in cal.closest_pair or ()]
    similarities = {
        "copies": cal.copy_similarity,  # 99% of the calibration's copies score at least this
        "re_encoded": cal.mild_similarity,  # 99% of the re-encoded copies alone
        "found_copies": cal.found_copies,  # sampled images with a copy in the collection
        "found": cal.found_similarity,  # the least similar of those copies
        "distinct": cal.distinct_similarity,  # the closest distinct pair ...
        "closest_pair": pair,  # ... and its two rows
    }
    return {"threshold": cal.threshold, "explanation": cal.explain(), "similarities": similarities,
            "images": cal.images}  # fmt: skip
