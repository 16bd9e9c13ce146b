"""What the server keeps loaded and answers with, free of any web framework: `Backend`.

    backend = Backend.open("index")                   # index, its stores, its model: loaded once
    backend.search_rows([5], offset=0, limit=20)      # {"queries": [{"query", "results"}], "more", ...}
    backend.search_images([("cat.jpg", image)])       # PIL images, embedded with the index's model
    backend.duplicates.page(0.95, page=(0, 20))       # near-duplicate groups (msfkit.serve.duplicates)

Search is `msfkit.retrieval`'s: the index's faiss search (`search_vectors`, as `Index.search`), with
the hits' paths and labels looked up in arrays loaded once; this module pages the results and checks
row numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from msfkit.serve.errors import NotFound, Refused

if TYPE_CHECKING:
    from msfkit.models import Encoder
    from msfkit.retrieval import Index


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    upload_bytes: int = 20 * 2**20  # the whole request body
    upload_pixels: int = 40_000_000  # per uploaded image, read from its header before decoding
    upload_files: int = 16  # images per search request
    depth: int = 1000  # offset + limit of a result page
    page: int = 200  # limit of one page


class Backend:
    """An open index with its stores' metadata and (when loadable) its model, ready to answer."""

    def __init__(self, index: Index, encoder: Encoder | None = None, **options: Any) -> None:
        self.index = index
        self.encoder = encoder
        self.device = options.get("device")
        self.limits: Limits = options.get("limits") or Limits()
        self.model_note: str | None = options.get("model_note")
        self.store = index.store  # row vectors for row queries, metadata for dedup
        self.meta = self.store.meta
        # looked up once: per request, reading them from the index's tables costs ~10 ms at 100k rows
        self.paths = index.absolute_paths(np.arange(len(index)))
        self.labels = index.rows["label"].to_numpy()
        self.shards = self.store.shard_vectors()  # memory-mapped once, not per row query
        self.starts = np.cumsum([0] + [len(a) for a in self.shards])
        draft = bool(index.info.get("embed_settings", {}).get("draft"))  # decode uploads as the collection
        self.draft_size = encoder.preprocess.resize if draft and encoder is not None else None
        from msfkit.serve.duplicates import Duplicates

        self.duplicates = Duplicates(self)  # dedup groups and the auto threshold, made when first asked

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
        vectors = np.stack([self.vector(r) for r in rows])
        names = [f"row {r}" for r in rows]
        return self._search(vectors, names, (offset, limit), rows if exclude_self else None)

    def vector(self, row: int) -> np.ndarray:
        """The stored vector of an indexed row (index rows are the stores' rows, in order)."""
        shard = int(np.searchsorted(self.starts, row, side="right")) - 1
        return np.asarray(self.shards[shard][row - self.starts[shard]], dtype=np.float32)

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

    def search_images(self, images: list[tuple[str, Any]], offset: int = 0, limit: int = 20, timings=None):
        """Neighbours of (name, PIL image) pairs, embedded with the index's model; `timings` (a dict),
        when given, gets the milliseconds of the forward ("embed") and of the search ("search")."""
        if self.encoder is None:
            raise Refused(self.model_note or "no model loaded", status=409)
        if not images:
            raise Refused("no image in the request: send a file in the form field 'image'")
        if len(images) > self.limits.upload_files:
            raise Refused(f"at most {self.limits.upload_files} images per request")
        start = time.perf_counter()
        vectors = self.encoder.embed([im for _, im in images], device=self.device)
        embedded = time.perf_counter()
        found = self._search(vectors, [name for name, _ in images], (offset, limit))
        if timings is not None:
            timings.update(embed=(embedded - start) * 1000, search=(time.perf_counter() - embedded) * 1000)
        return found

    def _search(self, vectors: np.ndarray, names: list[str], page: tuple[int, int], exclude=None):
        """The faiss search of `Index.search` (`search_vectors`), with the hits' paths and labels
        looked up in the arrays loaded at start: no table is read and no DataFrame built per query."""
        offset, limit = self.check_page(*page)
        k = min(offset + limit + (exclude is not None), len(self))
        scores, found = self.index.search_vectors(vectors, k)
        queries = []
        for qi, name in enumerate(names):
            hits = [(r, s) for r, s in zip(found[qi].tolist(), scores[qi].tolist(), strict=True) if r >= 0]
            if exclude is not None:
                hits = [(r, s) for r, s in hits if r != exclude[qi]][: offset + limit]
            results = [
                {"rank": rank, "score": round(s, 6), **self._hit(r)}
                for rank, (r, s) in enumerate(hits[offset:], start=offset + 1)
            ]
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
