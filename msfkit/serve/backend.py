"""What the server keeps loaded and answers with, free of any web framework: `Backend`.

    backend = Backend.open("index")                   # index, its stores, its model: loaded once
    backend.search_rows([5], offset=0, limit=20)      # {"queries": [{"query", "results"}], "more", ...}
    backend.search_images([("cat.jpg", image)])       # PIL images, embedded with the index's model
    backend.duplicates.page(0.95, page=(0, 20))       # near-duplicate groups (msfkit.serve.duplicates)
    backend.curation.page("outliers", (0, 20))         # outliers, label issues, leaks (serve.curation)
    backend.map.answer("pca")                           # the map's points (msfkit.serve.collection_map)

Search is `msfkit.retrieval`'s: the index's faiss search (`search_vectors`, as `Index.search`), with
the hits' paths and labels looked up in `Rows` (msfkit.serve.rows), loaded once and shared with the
views; this module pages the results.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from msfkit.retrieval import Index, open_index
from msfkit.retrieval.search import query_encoder, query_options
from msfkit.serve.collection_map import MapView
from msfkit.serve.curation import CurationViews
from msfkit.serve.duplicates import DuplicatesView
from msfkit.serve.errors import Refused
from msfkit.serve.rows import Rows

if TYPE_CHECKING:
    from msfkit.models import Encoder


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
        self.rows = Rows.of(index)  # paths, labels, file facts and vectors, shared with `duplicates`
        self.query = query_options(index, self.device)  # uploads embedded as the collection was
        self.draft_size = encoder.preprocess.resize if self.query.draft and encoder is not None else None
        # dedup groups and the auto threshold, the curation lists, the map: each made when first asked
        self.duplicates = DuplicatesView(index, self.rows, page_limit=self.limits.page)
        self.curation = CurationViews(index, self.rows, page_limit=self.limits.page)
        self.map = MapView(self.rows, self.duplicates, self.curation, page_limit=self.limits.page)

    @classmethod
    def open(
        cls, path: str | os.PathLike, model: str | None = None, device: str | None = None, **options: Any
    ) -> Backend:
        """Open the index folder `path` and load its model (or `model`, which must be the same one).

        Without a loadable model the server still answers row and vector queries; uploads are
        refused with `model_note`, which says why."""
        index = open_index(path)
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

    # -- search -------------------------------------------------------------------------------------
    def search_rows(self, rows: list[int], offset: int = 0, limit: int = 20, exclude_self: bool = False):
        """Neighbours of stored rows (`exclude_self`: without the row itself, as 'neighbours of')."""
        if not 1 <= len(rows) <= self.limits.upload_files:
            raise Refused(f"1 to {self.limits.upload_files} rows per request")
        vectors = self.rows.vectors(rows)
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
        vectors = self.encoder.embed(
            [im for _, im in images], device=self.device, precision=self.query.precision
        )
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
                {"rank": rank, "score": round(s, 6), **self.rows.hit(r)}
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

    def auto_threshold(self) -> dict[str, Any]:
        """The dedup threshold `msfkit dedup --threshold auto` would use (`DuplicatesView.auto`: measured
        with the index's model on the first request, then kept); 409 without a model."""
        if self.encoder is None:
            raise Refused(f"threshold auto embeds copies of images: {self.model_note}", status=409)
        return self.duplicates.auto(self.encoder, self.device)

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
