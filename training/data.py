"""Where training images come from: a named dataset ("fashion-mnist[:split]") or an image folder.

Both give a map-style dataset of (PIL RGB image, label) from `msfkit.data.datasets`. A folder is
walked by the same rule as `msfkit embed` (hidden files skipped); its label is the index of the
first-level sub-folder when every image sits in one (a class-folder tree), else -1 (unlabelled).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from msfkit.data.datasets import DATASETS, ArrayImageDataset, Subset, first, image_folder, load_dataset
from msfkit.models.errors import MsfkitError

__all__ = ["UInt8Batches", "as_batch", "first", "labels_of", "open_dataset"]


def open_dataset(spec: str, default_split: str = "train", transform=None):
    """`spec` is a folder, or a named dataset with an optional split: "fashion-mnist:test"."""
    name, _, split = spec.partition(":")
    if name in DATASETS:
        images, labels, _ = load_dataset(name, split or default_split)
        return ArrayImageDataset(images, labels, transform)
    if not spec:
        raise MsfkitError(f"no training data: set data=FOLDER or data=NAME ({', '.join(DATASETS)})")
    return image_folder(spec, transform)


def labels_of(dataset) -> np.ndarray:
    """The labels of a dataset from `open_dataset` (-1 where unknown), without reading any image."""
    return np.asarray(dataset.labels, dtype=np.int64)


class UInt8Batches:
    """Whole batches of un-augmented uint8 images, for views made on the training device (`training.views`).

    `batch[indices]` (DataLoader's `__getitems__`) is (images (B, C, S, S) uint8, sizes (B, 2) = each
    image's (height, width) before any resizing, labels (B,)). A named dataset's uint8 array is
    gathered as it is (C = 1 for grey, S = its size: nothing to decode, no workers needed); any
    other image is decoded to RGB and resized (bilinear, squashed) to S = `source_size`.
    """

    def __init__(self, dataset, source_size: int) -> None:
        self.dataset, self.source_size = dataset, source_size
        self.labels = labels_of(dataset)
        self.array = _uint8_array(dataset)

    @property
    def in_memory(self) -> bool:
        return self.array is not None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices):
        if self.array is not None:
            labels = torch.as_tensor(self.labels[indices])
            batch = torch.from_numpy(self.array[indices])
            batch = batch.unsqueeze(1) if batch.ndim == 3 else batch.permute(0, 3, 1, 2).contiguous()
            return batch, torch.tensor([batch.shape[2:]]).expand(len(indices), 2), labels
        size, images, sizes, sources = self.source_size, [], [], []
        # a dataset that skips bad files (training.bad_files) says which item an image came from
        resolve = getattr(self.dataset, "resolve", None) or (lambda i: (self.dataset.image(i), i))
        for i in indices:
            img, source = resolve(i)
            sources.append(source)
            sizes.append((img.height, img.width))
            pixels = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.uint8)
            images.append(torch.from_numpy(pixels.copy()).permute(2, 0, 1))
        return torch.stack(images), torch.tensor(sizes), torch.as_tensor(self.labels[sources])


def as_batch(batch):
    """The DataLoader collate_fn of `UInt8Batches`: its batches come collated."""
    return batch


def _uint8_array(dataset):
    """The (N, H, W) or (N, H, W, 3) uint8 array behind a dataset, or None."""
    if isinstance(dataset, Subset):
        inner = _uint8_array(dataset.dataset)
        return None if inner is None else inner[dataset.indices]
    a = getattr(dataset, "images", None)
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8:
        return None
    return a if a.ndim == 3 or (a.ndim == 4 and a.shape[3] == 3) else None
