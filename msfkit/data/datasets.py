"""Named datasets that need no download: Fashion-MNIST from the Debian package.

`sudo apt-get install dataset-fashion-mnist` puts the IDX files under
/usr/share/datasets/fashion-mnist/ (the project's set-up script installs it); MSFKIT_FASHION_MNIST
points elsewhere. Images come out as 28x28 uint8 arrays; `ArrayImageDataset` serves them as PIL
images so every transform in msfkit applies unchanged.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from msfkit.data.images import BadImageError, load_image
from msfkit.data.inputs import list_inputs
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write
from msfkit.models.preprocess import to_rgb

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
DATASETS = ("fashion-mnist",)
_FILES = {"train": "train", "test": "t10k"}


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get("MSFKIT_FASHION_MNIST", FASHION_MNIST_DIR))


def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of the 'train' (60k) or 'test' (10k) split."""
    if split not in _FILES:
        raise MsfkitError(f"fashion-mnist has splits 'train' and 'test', not {split!r}")
    root = fashion_mnist_dir()
    images = _read_idx(root / f"{_FILES[split]}-images-idx3-ubyte.gz")
    labels = _read_idx(root / f"{_FILES[split]}-labels-idx1-ubyte.gz").astype(np.int64)
    if len(images) != len(labels):
        raise MsfkitError(f"{root}: {len(images)} images but {len(labels)} labels in the {split} split")
    return images, labels


def load_dataset(name: str, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images, labels, class names) of a named dataset split."""
    if name != "fashion-mnist":
        raise MsfkitError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    images, labels = load_fashion_mnist(split)
    return images, labels, FASHION_MNIST_CLASSES


def _read_idx(path: Path) -> np.ndarray:
    if not path.is_file():
        raise MsfkitError(
            f"{path} not found: install Fashion-MNIST with 'apt-get install dataset-fashion-mnist' "
            "or set MSFKIT_FASHION_MNIST to its folder"
        )
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        raise MsfkitError(f"{path}: not an IDX file of unsigned bytes")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class ArrayImageDataset:
    """A map-style dataset over uint8 arrays (N, H, W[, C]) that yields (transform(PIL image), label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None, transform=None) -> None:
        self.images, self.transform = images, transform
        self.labels = np.full(len(images), -1, np.int64) if labels is None else np.asarray(labels)

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int):
        """Item `i` as an 8-bit RGB PIL image, before any transform."""
        return to_rgb(Image.fromarray(self.images[i]))

    def __getitem__(self, i: int):
        img = self.image(i)
        return (self.transform(img) if self.transform is not None else img), _label(self.labels[i])


class FileImageDataset:
    """(transform(image), label) for image files, read with msfkit's safe loader (`load_image`)."""

    def __init__(self, paths: Sequence[str | Path], labels: Sequence[Any] | None = None, transform=None):
        self.paths, self.transform = [str(p) for p in paths], transform
        self.labels = np.full(len(self.paths), -1, np.int64) if labels is None else np.asarray(labels)
        self.classes: list[str] = []

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int):
        """Item `i` as an upright 8-bit RGB PIL image; a bad file raises BadImageError naming it."""
        try:
            return load_image(self.paths[i])
        except BadImageError as e:
            raise BadImageError(f"{self.paths[i]}: {e}") from None

    def __getitem__(self, i: int):
        img = self.image(i)
        return (self.transform(img) if self.transform is not None else img), _label(self.labels[i])


def image_folder(root: str | Path, transform=None) -> FileImageDataset:
    """Every image under `root`, walked by the one rule of `msfkit.data.inputs` (sorted, hidden files
    skipped). Labels are class indices of the first sub-folder when every image sits in one, else -1."""
    if not Path(root).is_dir():
        raise MsfkitError(f"{root}: no such folder, and not a named dataset ({', '.join(DATASETS)})")
    files = list_inputs([root]).files
    if not files:
        raise MsfkitError(f"{root}: no images found")
    ds = FileImageDataset([f.path for f in files], None, transform)
    if all(f.label is not None for f in files):
        ds.classes = sorted({f.label for f in files})
        index = {c: i for i, c in enumerate(ds.classes)}
        ds.labels = np.array([index[f.label] for f in files], dtype=np.int64)
    return ds


class Subset:
    """The items `indices` of a dataset, in that order, with their labels (or `labels` instead)."""

    def __init__(self, dataset, indices: Sequence[int], labels: Sequence[Any] | None = None) -> None:
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(dataset.labels)[self.indices] if labels is None else np.asarray(labels)
        if len(self.labels) != len(self.indices):
            raise ValueError(f"{len(self.indices)} indices but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.indices)

    def image(self, i: int):
        return self.dataset.image(self._index(i))

    def __getitem__(self, i: int):
        return self.dataset[self._index(i)][0], _label(self.labels[i])

    def _index(self, i: int) -> int:
        if not 0 <= i < len(self.indices):
            raise IndexError(i)
        return int(self.indices[i])


def first(dataset, n: int):
    """`dataset` cut to its first `n` items (n = 0: all)."""
    return Subset(dataset, range(n)) if 0 < n < len(dataset) else dataset


def _label(value):
    return value.item() if isinstance(value, np.generic) else value


def export(
    name: str, directory: str | Path, splits: Sequence[str] = ("train", "test"), per_class: int | None = None
) -> dict[str, int]:
    """Write dataset `name` under `directory` as SPLIT/CLASS/NNNNN.png (NNNNN = index in the split).

    `per_class`: only the first N images of each class. Files already there are kept, and each
    is renamed into place, so a killed export leaves no half file and a rerun finishes it.
    Returns the number of images of each split now in the folder.
    """
    counts = {}
    for split in splits:
        images, labels, class_names = load_dataset(name, split)
        written = 0
        for c, class_name in enumerate(class_names):
            folder = Path(directory) / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(labels == c)[:per_class]:
                path = folder / f"{i:05d}.png"
                if not path.exists():
                    atomic_write(path, lambda tmp, im=images[i]: Image.fromarray(im).save(tmp, format="PNG"))
                written += 1
        counts[split] = written
    return counts
