"""The joined-vectors cache: a multi-shard store's vectors as one file, so `Store.vectors` is one
memory-mapped array whatever the number of shards (copied once per store version, never per access)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from msfkit.models.files import atomic_write
from msfkit.sizes import cache_dir


def joined_vectors(arrays: list[np.ndarray], key: str, shape: tuple[int, int]) -> np.ndarray:
    """The shards' vectors as one memory-mapped array, copied once into the msfkit cache under `key`."""
    path = cache_dir("vectors", f"{key}.npy")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            start = 0
            for a in arrays:
                out[start : start + len(a)] = a
                start += len(a)
            out.flush()

        atomic_write(path, write)
    joined = np.load(path, mmap_mode="r", allow_pickle=False)
    if joined.shape != shape:  # a damaged cache file: rebuild it once
        path.unlink(missing_ok=True)
        return joined_vectors(arrays, key, shape)
    return joined
