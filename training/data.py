"""Where training images come from: a named dataset ("fashion-mnist[:split]") or an image folder.

Both give a map-style dataset of (PIL RGB image, label). A folder's label is the index of its
first-level sub-folder when every image sits in one (a class-folder tree), else -1 (unlabelled).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from msfkit.data.datasets import DATASETS, ArrayImageDataset, load_dataset
from msfkit.data.images import BadImageError, image_extensions, load_image
from msfkit.models.errors import MsfkitError


class ImageFolder:
    """Images under `root` (recursively, sorted), as (PIL RGB image, label)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise MsfkitError(f"{root}: no such folder, and not a named dataset ({', '.join(DATASETS)})")
        exts = image_extensions()
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in exts and p.is_file())
        if not self.paths:
            raise MsfkitError(f"{root}: no images found")
        parts = [p.relative_to(self.root).parts for p in self.paths]
        if all(len(x) > 1 for x in parts):
            self.classes = sorted({x[0] for x in parts})
            index = {c: i for i, c in enumerate(self.classes)}
            self.labels = np.array([index[x[0]] for x in parts], dtype=np.int64)
        else:
            self.classes, self.labels = [], np.full(len(self.paths), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return load_image(self.paths[i], draft_size=256), int(self.labels[i])
        except BadImageError as e:
            raise MsfkitError(f"{self.paths[i]}: {e}") from None


def open_dataset(spec: str, default_split: str = "train"):
    """`spec` is a folder, or a named dataset with an optional split: "fashion-mnist:test"."""
    name, _, split = spec.partition(":")
    if name in DATASETS:
        images, labels, _ = load_dataset(name, split or default_split)
        return ArrayImageDataset(images, labels)
    if not spec:
        raise MsfkitError(f"no training data: set data=FOLDER or data=NAME ({', '.join(DATASETS)})")
    return ImageFolder(spec)


def labels_of(dataset) -> np.ndarray:
    """The labels of a dataset from `open_dataset` (-1 where unknown), without reading any image."""
    return np.asarray(dataset.labels, dtype=np.int64)


class Subset:
    """The first `n` items of a dataset, keeping `labels`."""

    def __init__(self, dataset, n: int) -> None:
        self.dataset, self.n = dataset, min(n, len(dataset))
        self.labels = labels_of(dataset)[: self.n]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.dataset[i]


def first(dataset, n: int):
    """`dataset` cut to its first `n` items (n = 0: all)."""
    return Subset(dataset, n) if 0 < n < len(dataset) else dataset


class Transformed:
    """A dataset of (PIL image, label) with `transform` applied to the image."""

    def __init__(self, dataset, transform) -> None:
        self.dataset, self.transform = dataset, transform
        self.labels = labels_of(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        image, label = self.dataset[i]
        return self.transform(image), label
