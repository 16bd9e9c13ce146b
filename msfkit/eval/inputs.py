"""What `msfkit eval` evaluates: features and labels of a train and a val split, and their source.

One of:
- a named dataset (`dataset="fashion-mnist"`: its train and test splits) and a model;
- two image folders with class sub-folders (`train=DIR, val=DIR`) and a model: each is embedded
  into an embedding store by `msfkit.embedding.run.embed` (kept in `features_dir` for the next run);
- two embedding stores with labels (`train=STORE, val=STORE`): no model needed, except for the
  `msf` linear preset, which reruns the backbone on the images.
Features are always the model's own centre-crop preprocessing, L2-normalised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msfkit.data.datasets import ArrayImageDataset, FileImageDataset, load_dataset
from msfkit.data.inputs import list_inputs
from msfkit.data.storage import is_url
from msfkit.embedding import EmbedOptions, StoreOptions, embed
from msfkit.embedding.eta import JobLine
from msfkit.eval.features import extract_features
from msfkit.models import Encoder
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write
from msfkit.models.identity import check_same_model
from msfkit.store import is_store, open_store
from msfkit.store.format import check_finite, read_manifest


@dataclass
class EvalInputs:
    """Features and labels of both splits, what made them, and (for the msf preset) the train images."""

    train_feats: np.ndarray
    train_labels: np.ndarray
    val_feats: np.ndarray
    val_labels: np.ndarray
    model: dict[str, Any]  # {"name", "fingerprint"}
    source: dict[str, Any]  # {"kind": "dataset"|"folders"|"stores", "train": ..., "val": ...}
    # transform -> dataset of (image tensor, label) in train_feats order; None for store-only inputs
    train_images: Callable[[Any], Any] | None = None


@dataclass
class _Work:
    """How features are made (shared by every split) and where they are kept."""

    embed: EmbedOptions
    features_dir: Path | None


def load_inputs(
    *,
    model: Encoder | str | Path | None = None,
    train: str | Path | None = None,
    val: str | Path | None = None,
    dataset: str | None = None,
    features_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    workers: int = 0,
    precision: str = "fp32",
    progress: bool = False,
    announce: bool = False,
):
    """(EvalInputs, encoder or None) from a dataset name, two image folders or two stores.
    `announce`: before embedding many images, one line on stderr with their number and the time."""
    opts = EmbedOptions(
        batch_size=batch_size, workers=workers, precision=precision, device=device, progress=progress,
        announce=announce,
    )  # fmt: skip
    if features_dir is not None and is_url(features_dir):
        raise MsfkitError(f"--features-dir {features_dir}: a local folder, not a URL")
    work = _Work(opts, Path(features_dir) if features_dir is not None else None)
    if dataset is not None:
        if train is not None or val is not None:
            raise MsfkitError("give either --dataset or --train/--val, not both")
        if model is None:
            raise MsfkitError("--dataset needs a model (-m/--model or MSFKIT_MODEL)")
        return _dataset_inputs(dataset, _encoder(model), work)
    if train is None or val is None:
        raise MsfkitError("give --train and --val (image folders or embedding stores), or --dataset")
    encoder = _encoder(model) if model is not None else None
    with tempfile.TemporaryDirectory(prefix="msfkit-eval-") as tmp:
        folder = work.features_dir or Path(tmp)
        given = {"train": train, "val": val}
        if announce and encoder is not None:  # one line for both splits, counted before either runs
            todo = {split: _to_embed(_place(path), _store_dir(_place(path), split, encoder, folder))
                    for split, path in given.items()}  # fmt: skip
            opts = dataclasses.replace(opts, announce=JobLine(todo, encoder.config.arch, device))
        work = _Work(opts, folder)
        stores = {split: _as_store(_place(path), split, encoder, work) for split, path in given.items()}
        fix = "embed both splits with the model evaluated"
        check_same_model(stores["train"].model, stores["val"].model, "the train split", "the val split", fix)
        if encoder is not None:
            check_same_model(stores["train"].model, encoder, "the stores", "the model given", fix)
        splits = {split: _store_split(store, split, given[split]) for split, store in stores.items()}
        train_store = stores["train"]
        train_paths = train_store.absolute_paths() if train_store.source_root is not None else None
        name = train_store.model.name or (encoder.name if encoder is not None else None)
    kinds = {"store" if is_store(_place(p)) else "folder" for p in (train, val)}
    labels = splits["train"][1]
    inputs = EvalInputs(
        *splits["train"],
        *splits["val"],
        model={"name": name, "fingerprint": train_store.model.fingerprint},
        source={"kind": "stores" if kinds == {"store"} else "folders", "train": str(train), "val": str(val)},
        train_images=(lambda tf: FileImageDataset(train_paths, labels, tf)) if train_paths else None,
    )
    return inputs, encoder


def _dataset_inputs(name: str, encoder: Encoder, work: _Work):
    splits = {}
    arrays = {split: load_dataset(name, split)[:2] for split in ("train", "test")}
    folder = work.features_dir
    caches = {s: folder / f"{name}-{s}-{encoder.fingerprint}.npz" if folder else None for s in arrays}
    todo = {"train": 0, "val": 0}  # the test split is the val split
    for split, cache in caches.items():
        cached = cache is not None and cache.is_file()
        todo["train" if split == "train" else "val"] = 0 if cached else len(arrays[split][1])
    line = JobLine(todo, encoder.config.arch, work.embed.device) if work.embed.announce else False
    for split, (images, labels) in arrays.items():
        cache = caches[split]
        if cache is not None and cache.is_file():
            with np.load(cache, allow_pickle=False) as f:
                splits[split] = (f["features"], f["labels"])
            continue
        o = work.embed
        feats, labs = extract_features(
            encoder, ArrayImageDataset(images, labels), batch_size=o.batch_size or 256, device=o.device,
            precision=o.precision, workers=o.workers or 0, progress=o.progress, announce=line,
        )  # fmt: skip
        splits[split] = (feats, labs)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cache, lambda tmp, f=feats, y=labs: _save_npz(tmp, features=f, labels=y))
    train_images, train_labels = arrays["train"]
    inputs = EvalInputs(
        *splits["train"],
        *splits["test"],
        model={"name": encoder.name, "fingerprint": encoder.fingerprint},
        source={"kind": "dataset", "train": f"{name}:train", "val": f"{name}:test"},
        train_images=lambda tf: ArrayImageDataset(train_images, train_labels, tf),
    )
    return inputs, encoder


def _place(path: str | Path) -> Path | str:
    """A local split as a Path; a URL kept as written (a Path would fold its '//')."""
    return str(path) if is_url(path) else Path(path)


def _as_store(path: Path | str, split: str, encoder: Encoder | None, work: _Work):
    """The store at `path`, or the store of the image folder or prefix `path` (embedded on first use)."""
    if isinstance(path, Path) and not path.exists():
        raise MsfkitError(f"--{split} {path}: no such folder")
    if is_store(path):
        return open_store(path)
    if isinstance(path, Path) and not path.is_dir():
        raise MsfkitError(f"--{split} {path}: expected a folder of class sub-folders or an embedding store")
    if encoder is None:
        raise MsfkitError(
            f"--{split} {path} is an image folder: give the model to embed it with (-m/--model)"
        )
    out = _store_dir(path, split, encoder, work.features_dir)
    embed([path], encoder, out, work.embed, StoreOptions())
    return open_store(out)


def _store_dir(path: Path | str, split: str, encoder: Encoder, features_dir: Path) -> Path:
    """Where the image folder (or prefix) `path` is embedded: keyed by model AND source, so another
    --val folder gets its own store, never another's."""
    source = hashlib.sha256(str(path if isinstance(path, str) else path.resolve()).encode()).hexdigest()[:12]
    return features_dir / f"{split}-{encoder.fingerprint}-{source}"


def _to_embed(path: Path | str, out: Path) -> int:
    """About how many images embedding the folder `path` into `out` takes: none for a store, or
    when `out` is complete already (a rerun only adds what changed), else every image listed."""
    if isinstance(path, Path) and not path.is_dir() or is_store(path):
        return 0
    manifest = read_manifest(out)
    if manifest is not None and manifest.complete:
        return 0
    try:
        return len(list_inputs([path]).files)
    except MsfkitError:
        return 0  # the embedding run itself says what is wrong


def _store_split(store, split: str, where) -> tuple[np.ndarray, np.ndarray]:
    meta = store.meta
    if len(meta) == 0:
        raise MsfkitError(f"--{split} {where}: the {split} split is empty")
    labels = meta["label"]
    if labels.isna().any():
        raise MsfkitError(
            f"--{split} {where}: {int(labels.isna().sum())} of {len(meta)} items have no label "
            "(the images must sit in class sub-folders)"
        )
    # A copy, not the memory map: a temporary store is deleted once read.
    vectors = np.array(store.vectors, dtype=np.float32)
    check_finite(vectors, 0, f"--{split} {where}")
    return vectors, labels.to_numpy(dtype=str)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to a temporary name
        np.savez(f, **arrays)


def _encoder(model) -> Encoder:
    return model if isinstance(model, Encoder) else Encoder.from_pretrained(str(model))
