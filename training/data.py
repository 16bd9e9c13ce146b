"""Where training images come from: a named dataset ("fashion-mnist[:split]") or an image folder.

Both give a map-style dataset of (PIL RGB image, label) from `msfkit.data.datasets`. A folder is
walked by the same rule as `msfkit embed` (hidden files skipped); its label is the index of the
first-level sub-folder when every image sits in one (a class-folder tree), else -1 (unlabelled).
"""

from __future__ import annotations

import numpy as np

from msfkit.data.datasets import DATASETS, ArrayImageDataset, first, image_folder, load_dataset
from msfkit.models.errors import MsfkitError

__all__ = ["first", "labels_of", "open_dataset"]


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
