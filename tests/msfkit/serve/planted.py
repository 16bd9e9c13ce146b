"""A planted index for the map's and the curation lists' tests: chosen vectors, known answers.

TRAIN (rows 0-30): 15 vectors round class a's centre labelled "a", 15 round class b's labelled "b",
except FLIPPED (one of each cluster labelled as the other), and one FOREIGN vector far from both.
TEST (index rows 31-38): copies of the TRAIN rows in LEAKED (a 0.001 nudge: similarity ~1) and five
fresh vectors of the two classes (similarity ~0.64 to TRAIN: no leak at 0.95). The stores' source
roots are data/train and data/test, so the collection's root is data/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from msfkit.index import build_index
from tests.msfkit.index_stores import write_vector_store

DIM = 64
FLIPPED = (3, 20)
FOREIGN = 30
LEAKED = {31: 5, 32: 6, 33: 25}  # index row in TEST -> the TRAIN row it copies


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def planted_vectors() -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """(TRAIN vectors, their labels, TEST vectors, their labels)."""
    rng = np.random.default_rng(0)
    centres = 4 * rng.standard_normal((3, DIM))  # a, b, and the foreign image's direction

    def near(c: int, n: int) -> np.ndarray:  # noise 3/4 of the centre's length: cosine ~0.64 within
        return centres[c] + 3 * rng.standard_normal((n, DIM))

    train = np.concatenate([near(0, 15), near(1, 15), centres[2:3]])
    labels = ["a"] * 15 + ["b"] * 15 + ["a"]
    for r in FLIPPED:
        labels[r] = "b" if labels[r] == "a" else "a"
    copies = train[list(LEAKED.values())] + 0.001 * rng.standard_normal((len(LEAKED), DIM))
    test = np.concatenate([copies, near(0, 3), near(1, 2)])
    test_labels = [labels[r] for r in LEAKED.values()] + ["a"] * 3 + ["b"] * 2
    return _unit(train), labels, _unit(test), test_labels


def planted_index_folder(root: Path) -> Path:
    """The planted index (flat) of the two stores, built under `root`; its folder."""
    train, labels, test, test_labels = planted_vectors()
    a = write_vector_store(root / "train-store", train, source_root=root / "data" / "train", labels=labels)
    b = write_vector_store(root / "test-store", test, source_root=root / "data" / "test", labels=test_labels)
    build_index([a, b], root / "index", kind="flat")
    return root / "index"
