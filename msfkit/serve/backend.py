"""What the server keeps loaded and answers with, free of any web framework: `Backend`.

    backend = Backend.open("index")                   # index, its stores, its model: loaded once
    backend.search_rows([5], offset=0, limit=20)      # {"queries": [{"query", "results"}], "more", ...}
    backend.search_images([("cat.jpg", image)])       # PIL images, embedded with the index's model
    backend.dedup_page(0.95, offset=0, limit=20)      # near-duplicate groups, largest first
    backend.removals(0.95, keep="first", choices={0: 17})   # the removal list, a DataFrame

Search and dedup are `msfkit.retrieval`'s (`Index.search`, `Index.dedup`, `removal_list`); this
module only pages their results, checks row numbers and caches dedup groups per threshold.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from msfkit.models.errors import MsfkitError

if TYPE_CHECKING:
    import pandas as pd

    from msfkit.models import Encoder
    from msfkit.retrieval import Index


class NotFound(MsfkitError):
    """A row (or anything else asked for) that the index does not hold: HTTP 404."""


class Refused(MsfkitError):
    """A request the server will not answer as asked; `status` is the HTTP code (400, 413, 415, 422)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    upload_bytes: int = 20 * 2**20  # the whole request body
    upload_pixels: int = 40_000_000  # per uploaded image, read from its header before decoding
    upload_files: int = 16  # images per search request
    depth: int = 1000  # offset + limit of a result page
    page: int = 200  # limit of one page


DEDUP_CACHE = 8  # thresholds whose groups stay in memory


class Backend:
    """An open index with its stores' metadata and (when loadable) its model, ready to answer."""

    def __init__(self, index: Index, encoder: Encoder | None = None, **options: Any) -> None:
        from msfkit.index.folder import reopen_store

        self.index = index
        self.encoder = encoder
        self.device = options.get("device")
        self.limits: Limits = options.get("limits") or Limits()
        self.model_note: str | None = options.get("model_note")
        self.store = reopen_store(index.info)  # row vectors for row queries, metadata for dedup
        self.meta = self.store.meta
        self.paths = index.absolute_paths(np.arange(len(index)))
        self.labels = index.rows["label"].to_numpy()
        draft = bool(index.info.get("embed_settings", {}).get("draft"))  # decode uploads as the collection
        self.draft_size = encoder.preprocess.resize if draft and encoder is not None else None
        self._groups: OrderedDict[tuple[float, int], pd.DataFrame] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls, path: str | os.PathLike, model: str | None = None, device: str | None = None, **options: Any
    ) -> Backend:
        """Open the index folder `path` and load its model (or `model`, which must be the same one).

        Without a loadable model the server still answers row and vector queries; uploads are
        refused with `model_note`, which says why."""
        import msfkit
        from msfkit.retrieval.search import query_encoder

        index = msfkit.open_index(path)
        encoder, note = None, None
        if model is None and not index.model.get("name"):
            note = "this index records no loadable model; start msfkit serve with -m MODEL to search by image"
        else:
            encoder = query_encoder(index, model)
            if device:
                encoder = encoder.to(device)
        return cls(index, encoder, device=device, model_note=note, **options)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def key(self) -> str:
        """A name for this index's contents (its stores and files), for cache folders."""
        facts = [self.index.info.get("files"), [s["manifest_hash"] for s in self.index.info["sources"]]]
        facts.append(str(self.index.path.resolve()))
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]

    # -- rows ---------------------------------------------------------------------------------------
    def check_row(self, row: int) -> int:
        if not 0 <= row < len(self):
            raise NotFound(f"row {row}: the index holds rows 0 to {len(self) - 1}")
        return int(row)

    def path(self, row: int) -> str:
        """The source file of an indexed row: the only way the server ever names a file."""
        return str(self.paths[self.check_row(row)])

    def row_info(self, row: int) -> dict[str, Any]:
        row = self.check_row(row)
        facts = self.meta.iloc[row]
        info = self._hit(row)
        info.update(width=int(facts["width"]), height=int(facts["height"]), bytes=int(facts["bytes"]))
        return info

    def _hit(self, row: int) -> dict[str, Any]:
        path = self.paths[row]
        label = self.labels[row]
        return {
            "row": int(row),
            "path": path,
            "name": Path(path).name,
            "label": label if isinstance(label, str) else None,
            "folder": Path(path).parent.name,
        }

    # -- search -------------------------------------------------------------------------------------
    def search_rows(self, rows: list[int], offset: int = 0, limit: int = 20, exclude_self: bool = False):
        """Neighbours of stored rows (`exclude_self`: without the row itself, as 'neighbours of')."""
        if not 1 <= len(rows) <= self.limits.upload_files:
            raise Refused(f"1 to {self.limits.upload_files} rows per request")
        rows = [self.check_row(r) for r in rows]
        unique, back = np.unique(np.array(rows, dtype=np.int64), return_inverse=True)
        vectors = self.store.take(unique)[back]
        names = [f"row {r}" for r in rows]
        return self._search(vectors, names, (offset, limit), rows if exclude_self else None)

    def search_vectors(self, vectors: Any, offset: int = 0, limit: int = 20) -> dict[str, Any]:
        try:
            array = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        except (TypeError, ValueError):
            raise Refused("a vector is a list of numbers") from None
        if array.ndim != 2 or array.shape[1] != self.index.dim:
            raise Refused(f"vectors of {self.index.dim} numbers expected, got shape {list(array.shape)}")
        if len(array) > self.limits.upload_files:
            raise Refused(f"at most {self.limits.upload_files} vectors per request")
        names = [f"vector {i}" for i in range(len(array))]
        return self._search(array, names, (offset, limit))

    def search_images(self, images: list[tuple[str, Any]], offset: int = 0, limit: int = 20):
        """Neighbours of (name, PIL image) pairs, embedded with the index's model."""
        if self.encoder is None:
            raise Refused(self.model_note or "no model loaded", status=409)
        if not images:
            raise Refused("no image in the request: send a file in the form field 'image'")
        if len(images) > self.limits.upload_files:
            raise Refused(f"at most {self.limits.upload_files} images per request")
        vectors = self.encoder.embed([im for _, im in images], device=self.device)
        return self._search(vectors, [name for name, _ in images], (offset, limit))

    def _search(self, vectors: np.ndarray, names: list[str], page: tuple[int, int], exclude=None):
        offset, limit = self.check_page(*page)
        k = min(offset + limit + (exclude is not None), len(self))
        df = self.index.search(vectors, k=k)  # the library's search: rank, score, row, path, label
        queries = []
        for qi, (name, hits) in enumerate(zip(names, _split(df, len(names)), strict=True)):
            if exclude is not None:
                hits = hits[hits["row"] != exclude[qi]][: offset + limit]
            results = []
            for rank, (row, score) in enumerate(zip(hits["row"], hits["score"], strict=True), start=1):
                if rank > offset:
                    results.append({"rank": rank, "score": round(float(score), 6), **self._hit(row)})
            queries.append({"query": name, "results": results})
        available = min(len(self) - (exclude is not None), self.limits.depth)
        return {"offset": offset, "limit": limit, "more": offset + limit < available, "queries": queries}

    def check_page(self, offset: int, limit: int) -> tuple[int, int]:
        lim = self.limits
        if offset < 0 or not 1 <= limit <= lim.page:
            raise Refused(f"offset must be >= 0 and limit between 1 and {lim.page}")
        if offset + limit > lim.depth:
            raise Refused(f"results go {lim.depth} deep: offset + limit must be <= {lim.depth}")
        return offset, limit

    # -- duplicates ---------------------------------------------------------------------------------
    def groups(self, threshold: float, k: int = 10) -> pd.DataFrame:
        """`Index.dedup` at `threshold`, cached for the last few thresholds asked for."""
        if not -1 <= threshold <= 1:
            raise Refused(f"threshold {threshold}: a cosine similarity, between -1 and 1")
        if not 1 <= k <= 100:
            raise Refused(f"k {k}: between 1 and 100")
        key = (round(float(threshold), 6), int(k))
        with self._lock:  # one computation per threshold, however many requests ask at once
            if key not in self._groups:
                self._groups[key] = self.index.dedup(threshold=key[0], k=key[1])
                while len(self._groups) > DEDUP_CACHE:
                    self._groups.popitem(last=False)
            self._groups.move_to_end(key)
            return self._groups[key]

    def dedup_page(self, threshold: float, k: int = 10, page: tuple[int, int] = (0, 20), keep: str = "first"):
        """Groups `offset` to `offset + limit` at `threshold`, each with its members and the row that
        `keep` (first | largest | newest, as `msfkit dedup --keep`) would keep."""
        from msfkit.retrieval.keep import removal_list

        df = self.groups(threshold, k)
        offset, limit = page
        if offset < 0 or not 1 <= limit <= self.limits.page:
            raise Refused(f"offset must be >= 0 and limit between 1 and {self.limits.page}")
        total = int(df["group"].nunique()) if len(df) else 0
        shown = df[(df["group"] >= offset) & (df["group"] < offset + limit)]
        kept = dict(zip(*removal_list(shown, self.meta, keep)[["group", "kept"]].to_numpy().T, strict=True))
        groups = []
        for group, members in shown.groupby("group", sort=True):
            rows = [dict(self.row_info(int(r)), score=round(float(s), 6))
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
        out = removal_list(groups, self.meta, keep)
        chosen = []
        for group, row in (choices or {}).items():
            members = groups[groups["group"] == group]
            if row not in set(members["row"].tolist()):
                raise Refused(f"row {row} is not in group {group} at threshold {threshold}")
            kept = self.paths[row]
            chosen += [{"path": p, "group": group, "kept": kept, "reason": "chosen"}
                       for r, p in zip(members["row"], members["path"], strict=True) if r != row]  # fmt: skip
        if choices:
            out = out[~out["group"].isin(list(choices))]
            out = pd.concat([out, pd.DataFrame.from_records(chosen, columns=COLUMNS)], ignore_index=True)
        return out.sort_values(["group", "path"], ignore_index=True)

    # -- about --------------------------------------------------------------------------------------
    def about(self) -> dict[str, Any]:
        info = self.index.info
        model = {k: info["model"].get(k) for k in ("name", "revision", "fingerprint")}
        model.update(loaded=self.encoder is not None, note=self.model_note)
        if self.encoder is not None:
            model.update(embedding_dim=int(self.encoder.embedding_dim), device=str(self.device or "cpu"))
        index = {k: info.get(k) for k in ("type", "factory", "metric", "dim", "count", "search_params")}
        index.update(path=str(self.index.path.resolve()), recall=info.get("recall"))
        sources = [{k: s.get(k) for k in ("store", "source_root", "rows")} for s in info["sources"]]
        return {"index": index, "model": model, "sources": sources, "limits": asdict(self.limits)}


def _split(df: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    """The result rows of each of `n` queries, in order (the library names them 'vector i' or 'image i')."""
    starts = np.flatnonzero(df["rank"].to_numpy() == 1).tolist() + [len(df)]
    if len(starts) - 1 != n:
        raise MsfkitError(f"search answered {len(starts) - 1} queries for {n}")
    return [df.iloc[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]
