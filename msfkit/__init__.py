"""msfkit: self-supervised image embeddings with MSF (Mean Shift, ICCV 2021).

    import msfkit
    encoder = msfkit.load("org/name@revision")          # or a model folder
    vectors = encoder.embed(images)                        # PIL images, uint8 arrays: (N, D) float32
    store = msfkit.embed(["photos/"], encoder, "store")    # a resumable embedding store
    index = msfkit.build_index(store, "index")             # faiss, tuned to recall@10 >= 0.95
    index.search(image, k=10)                              # a DataFrame: rank, score, path, label
    index.dedup(threshold=0.95)                            # near-duplicate groups
    msfkit.find_leaks("train", "test").table               # test images with a near copy in train
    msfkit.outliers("index", top=20)                       # images that do not belong
    msfkit.label_issues("index")                           # labels their neighbours vote against
    msfkit.select("index", budget=100).rows                # 100 images that cover the collection
    report = msfkit.evaluate(encoder, dataset="fashion-mnist", knn=True, linear="fast")
    msfkit.datasets.export("fashion-mnist", "data/fm")     # a labelled folder of PNG files

Importing msfkit is cheap; torch and faiss load on first use. The CLI commands are thin calls
of these functions.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence

from msfkit._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `import msfkit` stays cheap
if TYPE_CHECKING:
    from typing import Any

    import pandas as pd

    from msfkit.curate import Selection
    from msfkit.models import Encoder
    from msfkit.retrieval import Index
    from msfkit.retrieval.leaks import Leaks
    from msfkit.store import Store

__all__ = [
    "__version__",
    "build_index",
    "datasets",
    "embed",
    "evaluate",
    "find_leaks",
    "label_issues",
    "load",
    "open_index",
    "open_store",
    "outliers",
    "select",
]

PathLike = str | os.PathLike


def load(name: PathLike) -> Encoder:
    """An encoder from a model folder or a Hub id `org/name[@revision]`, loaded strictly, in eval mode."""
    from msfkit.models import Encoder

    return Encoder.from_pretrained(name)


def embed(
    inputs: PathLike | Sequence[PathLike], model: Encoder | PathLike, out: PathLike, **options: Any
) -> Store:
    """Embed the images of `inputs` (folders, path lists, files) into the store `out`; returns it.

    Options: those of `msfkit.embedding.EmbedOptions` (batch_size, workers, precision, device,
    draft, max_pixels, compiled, progress) and `StoreOptions` (shard, overwrite, strict, shard_rows,
    engine: "local" or "ray", address: the Ray cluster).
    A rerun continues where the last one stopped. `store.run` is the run's `EmbedSummary`.
    """
    from msfkit.embedding import embed as run
    from msfkit.embedding.run import split_options
    from msfkit.store import open_store

    opts, store_opts = split_options(options)
    model = model if not isinstance(model, (str, os.PathLike)) else load(model)
    summary = run(inputs, model, out, opts, store_opts)
    store = open_store(summary.store)
    store.run = summary
    return store


def open_store(path: PathLike | Sequence[PathLike]) -> Store:
    """An embedding store (or several, or a folder of `--shard` parts) read as one."""
    from msfkit.store import open_store as _open_store

    return _open_store(path)


def build_index(
    store: Store | PathLike | Sequence[PathLike], out: PathLike, *, force: bool = False, **options: Any
) -> Index:
    """Build the index folder `out` from embedding stores and open it.

    Options: kind ("auto", "flat", "hnsw", "ivf", "ivfpq"), memory ("4GB"), recall (0.95), seed,
    progress, on_disk (IVF lists searched memory-mapped), engine ("local" or "ray": pieces filled in
    Ray tasks), address (the Ray cluster). `force` replaces an existing index folder.
    """
    from msfkit.index import build_index as build
    from msfkit.store import Store as _Store

    stores = [p.root for p in store.parts] if isinstance(store, _Store) else store
    build(stores, out, overwrite=force, **options)
    return open_index(out)


def open_index(path: PathLike) -> Index:
    """An index folder, validated, ready to `search` and `dedup`."""
    from msfkit.retrieval import open_index as _open_index

    return _open_index(path)


def evaluate(model: Encoder | PathLike | None = None, **options: Any) -> dict[str, Any]:
    """The k-NN and linear protocols on a model's features (see `msfkit.eval.api.evaluate`)."""
    from msfkit.eval.api import evaluate as _evaluate

    return _evaluate(model, **options)


def find_leaks(train: PathLike, test: PathLike, **options: Any) -> Leaks:
    """The images of `test` with a near copy in `train` (indexes or stores of one model): leaks between
    splits. Options: threshold (a cosine similarity, or "auto"), progress, device (see
    `msfkit.retrieval.leaks.find_leaks`)."""
    from msfkit.retrieval.leaks import find_leaks as _find_leaks

    return _find_leaks(train, test, **options)


def outliers(
    source: PathLike,
    k: int | None = None,
    top: int | None = None,
    *,
    score: str = "knn",
    progress: bool = False,
) -> pd.DataFrame:
    """Images of an index or store ranked most foreign first (see `msfkit.curate.outliers`; k: its
    DEFAULT_K unless given; score: knn or mahalanobis)."""
    from msfkit.curate import outliers as _outliers

    return _outliers(source, k=k, top=top, progress=progress, score=score)


def label_issues(source: PathLike, k: int | None = None, *, progress: bool = False) -> pd.DataFrame:
    """Images whose k nearest neighbours vote against their label (see `msfkit.curate.label_issues`;
    k: its DEFAULT_K unless given)."""
    from msfkit.curate import label_issues as _label_issues

    return _label_issues(source, k=k, progress=progress)


def select(
    source: PathLike, budget: int, strategy: str = "coverage", *, seed: int = 0, progress: bool = False
) -> Selection:
    """`budget` images chosen by `strategy`: coverage, centres or random (see `msfkit.curate.select`)."""
    from msfkit.curate import select as _select

    return _select(source, budget, strategy=strategy, seed=seed, progress=progress)


def __getattr__(name: str):
    if name == "datasets":  # msfkit.datasets.export(...), msfkit.datasets.load_dataset(...)
        return importlib.import_module("msfkit.data.datasets")
    raise AttributeError(f"module 'msfkit' has no attribute {name!r}")
