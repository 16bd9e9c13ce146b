"""Named datasets that need no download: Fashion-MNIST from the Debian package.

`sudo apt-get install dataset-fashion-mnist` puts the IDX files under
/usr/share/datasets/fashion-mnist/ (the project's set-up script installs it); MSFKIT_FASHION_MNIST
points elsewhere. Images come out as 28x28 uint8 arrays; `ArrayImageDataset` serves them as PIL
images so every transform in msfkit applies unchanged.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from msfkit.models.errors import MsfkitError

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
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i])
        if self.transform is not None:
            img = self.transform(img)
        return img, (int(self.labels[i]) if self.labels is not None else -1)
