"""Nearest neighbours of images, folders or stored rows in an index folder, as a pandas DataFrame.

    results = search("index", ["cat.jpg", "more-cats/", "store:0,5-7"], k=10)
    results.columns  # query, query_path, rank, score, row, path, label
    results.attrs["errors"]  # [(query, reason)] for queries that could not be read

A query is an image file, a folder (every image under it), a store folder (every row) or
`STORE:ROWS` (rows such as `3`, `0,5,9` or `10-20`), a PIL image or uint8 image array (embedded
by `Encoder.embed`, the same path as `msfkit embed`), or an (n, D) float array of vectors. Images are
embedded with the index's own model (its name and fingerprint are in index.json); a `model` whose
fingerprint differs is refused, and so is a store embedded with another model. An image that
cannot be read is reported in `attrs["errors"]` and the other queries are still answered.
Stored rows and vectors need no model: torch and the encoder are imported by the first query that
is an image (lines marked `# loads torch`): a search by store rows never imports torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from msfkit.data.storage import is_url
from msfkit.index.folder import IndexFolder, open_folder
from msfkit.models.errors import MsfkitError
from msfkit.models.identity import check_same_model
from msfkit.store import is_store, open_store
from msfkit.store.format import EmbedSettings
from msfkit.store.shards import cells

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from msfkit.embedding.pipeline import EmbedOptions
    from msfkit.models.encoder import Encoder

COLUMNS = ("query", "query_path", "rank", "score", "row", "path", "label")
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")  # one part of a STORE:ROWS selector


@dataclass
class Queries:
    """Query vectors with a name and, when there is one, the image file each came from."""

    names: list[str] = field(default_factory=list)
    images: list[str | None] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def add(self, names: list[str], images: list[str | None], vectors: np.ndarray) -> None:
        self.names += names
        self.images += images
        self.vectors += list(vectors)


def search(
    index: IndexFolder | str | os.PathLike,
    queries: Sequence[str | os.PathLike] | np.ndarray,
    k: int = 10,
    model: Encoder | str | None = None,
    device: str | None = None,
) -> pd.DataFrame:
    """The `k` nearest indexed images of every query, best first (see the module docstring)."""
    import pandas as pd  # loads pandas: `search_hits` is the search without it

    hits = search_hits(index, queries, k, model, device)
    df = pd.DataFrame.from_records(hits.records, columns=COLUMNS)
    df.attrs["errors"] = hits.errors
    return df


@dataclass
class Hits:
    """What `search` returns before it is a DataFrame: one dict per hit (the keys are COLUMNS), in
    order, and the queries that could not be read, (query, reason). `msfkit search` prints these
    without loading pandas."""

    records: list[dict[str, Any]]
    errors: list[tuple[str, str]]


def search_hits(
    index: IndexFolder | str | os.PathLike,
    queries: Sequence[str | os.PathLike] | np.ndarray,
    k: int = 10,
    model: Encoder | str | None = None,
    device: str | None = None,
) -> Hits:
    """`search`'s hits as plain records (see `Hits`)."""
    if k < 1:
        raise MsfkitError(f"k must be >= 1, not {k}")
    index = index if not isinstance(index, (str, os.PathLike)) else open_folder(index)
    found = resolve_queries(index, queries, model, device)
    records: list[dict[str, Any]] = []
    if found.vectors:
        scores, rows = index.search_vectors(np.stack(found.vectors), k)
        paths = index.absolute_paths(rows)
        hit = rows[rows >= 0]
        labels = dict(zip(hit.tolist(), cells(index.table, "label", hit), strict=True))
        for qi, (name, image) in enumerate(zip(found.names, found.images, strict=True)):
            for rank, (score, row) in enumerate(zip(scores[qi], rows[qi], strict=True), start=1):
                if row < 0:  # an approximate index may find fewer than k
                    break
                records.append(
                    {
                        "query": name,
                        "query_path": image,
                        "rank": rank,
                        "score": float(score),
                        "row": int(row),
                        "path": paths[qi * rows.shape[1] + rank - 1],
                        "label": labels[int(row)],
                    }
                )
    return Hits(records, found.errors)


def resolve_queries(
    index: IndexFolder,
    queries: Sequence[str | os.PathLike] | np.ndarray,
    model: Encoder | str | None = None,
    device: str | None = None,
) -> Queries:
    """Query names, image paths and vectors, in the order given; unreadable images go to `.errors`."""
    out = Queries()
    if isinstance(queries, np.ndarray) and queries.dtype != np.uint8:
        vectors = np.atleast_2d(queries)
        out.add([f"vector {i}" for i in range(len(vectors))], [None] * len(vectors), vectors)
        return out
    if isinstance(queries, (str, os.PathLike, Image.Image, np.ndarray)):
        queries = [queries]
    if not isinstance(queries, (list, tuple)):
        raise MsfkitError(
            f"cannot search with a {type(queries).__name__}: give image paths, folders, store rows, "
            "PIL images, uint8 image arrays or float vectors"
        )
    if not queries:
        raise MsfkitError("no queries: give image files, folders or store rows")
    encoder = None
    for n, item in enumerate(queries):
        if isinstance(item, (Image.Image, np.ndarray)):  # an image in memory: the one feature path
            encoder = encoder or query_encoder(index, model)
            opts = query_options(index, device)
            vectors = encoder.embed(item, device=opts.device, precision=opts.precision)
            out.add([f"image {n}"] * len(vectors), [None] * len(vectors), vectors)
            continue
        if not isinstance(item, (str, os.PathLike)):
            raise MsfkitError(f"query {n}: a {type(item).__name__} is not an image, a path or a vector")
        spec = store_rows_spec(item)
        if spec is not None:
            _add_store_rows(out, index, *spec)
            continue
        if encoder is None:
            encoder = query_encoder(index, model)
        _add_images(out, index, encoder, _image_files(item), device)
    return out


def query_encoder(index: IndexFolder, model: Encoder | str | None = None) -> Encoder:
    """The index's own model (or `model`, refused unless its fingerprint is the index's)."""
    from msfkit.models.encoder import Encoder  # loads torch: only a query that is an image needs it

    want = index.model
    if model is None:
        if not want.get("name"):
            raise MsfkitError("the index does not record a loadable model name; pass the model with -m")
        encoder = Encoder.from_pretrained(want["name"])
    elif isinstance(model, (str, os.PathLike)):
        encoder = Encoder.from_pretrained(str(model))
    else:
        encoder = model
    check_same_model(
        encoder, want, "the query model", f"the index {index.path}", "search with the index's model"
    )
    return encoder


def store_rows_spec(item: str | os.PathLike) -> tuple[str, str | None] | None:
    """(store folder or URL, as written; rows text or None for all) when `item` names a store or
    `STORE:ROWS`, else None."""
    path, rows = os.fspath(item), None
    head, sep, tail = path.rpartition(":")
    selector = sep and head and not tail.startswith("//")  # not the ':' of 's3://'
    if selector and not os.path.lexists(path) and is_store(head):  # a selector, checked by parse_rows
        path, rows = head, tail
    return (path, rows) if is_store(path) else None


def parse_rows(text: str, n: int, where: Path | str) -> list[int]:
    """'3', '0,5,9', '10-20' -> row numbers; every range is checked against the `n` rows of the store
    before it is expanded (so `0-999999999` is an error, not gigabytes of row numbers), and a selector
    that is not one says what is wrong with it (`5-2` reversed, `-5` no first row, `a-b` no numbers)."""
    rows: list[int] = []
    for part in text.split(","):
        m = _RANGE.fullmatch(part)
        if m is None:
            raise MsfkitError(f"{where}:{text}: {_selector_problem(part)}; select rows as 3, 0-9 or 0,5,9-12")
        lo, hi = int(m[1]), int(m[2] or m[1])
        if lo > hi:
            raise MsfkitError(f"{where}:{text}: the range {part} is reversed; write {hi}-{lo}")
        if hi >= n:
            raise MsfkitError(f"{where}: row {hi} is past the end (the store holds {n} rows)")
        rows += range(lo, hi + 1)
        if len(rows) > n * 16:  # repeating rows is fine; unbounded repetition is not
            raise MsfkitError(f"{where}: more than {n * 16} query rows")
    return rows


def _selector_problem(part: str) -> str:
    if not part:
        return "an empty selector part"
    if part.startswith("-"):
        return f"'{part}' has no first row (rows count from 0, not from the end)"
    return f"'{part}' is not a row number or a range of them"


def _add_store_rows(out: Queries, index: IndexFolder, path: str, spec: str | None) -> None:
    store = open_store(path)
    check_same_model(
        store.model,
        index.model,
        f"the query store {path}",
        f"the index {index.path}",
        "embed the queries with the index's model",
    )
    rows = list(range(len(store))) if spec is None else parse_rows(spec, len(store), path)
    order = np.array(rows, dtype=np.int64)
    unique, back = np.unique(order, return_inverse=True)
    vectors = store.take(unique)[back]
    files = store.absolute_paths()
    out.add([f"{path}:{r}" for r in rows], [str(files[r]) for r in rows], vectors)


def _image_files(item: str | os.PathLike) -> list[str]:
    if is_url(item):  # an image object, read where it is
        return [os.fspath(item)]
    path = Path(item)
    if path.is_dir():
        from msfkit.data.inputs import list_inputs  # loads torch (the decoders): a folder of images

        files = [f.path for f in list_inputs([path]).files]
        if not files:
            raise MsfkitError(f"{path}: no images in this folder")
        return files
    return [str(path)]


def query_options(index: IndexFolder, device: str | torch.device | None = None) -> EmbedOptions:
    """How query images are embedded: as the index's collection was (precision, draft decoding), so
    that a stored image searched as a query finds its own row first. `device`: a name as
    `--device` takes it (auto, cpu, cuda), a torch.device, or None for where the model is."""
    from msfkit.embedding.pipeline import EmbedOptions  # loads torch: only a query that is an image needs it
    from msfkit.models.runtime import resolve_device  # loads torch

    device = resolve_device(device) if device is not None else None
    return EmbedOptions.like(EmbedSettings.from_dict(index.info.get("embed_settings")), device=device)


def _add_images(out: Queries, index: IndexFolder, encoder: Encoder, files: list[str], device) -> None:
    from msfkit.embedding.pipeline import embed_items  # loads torch: only a query that is an image needs it

    vectors, bad = embed_items(encoder, files, query_options(index, device))
    failed = {i for i, _ in bad}
    good = [f for i, f in enumerate(files) if i not in failed]
    out.add(good, good, vectors)
    out.errors += [(files[i], reason) for i, reason in bad]
