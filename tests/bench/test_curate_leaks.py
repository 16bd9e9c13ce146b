"""bench/curate_leaks.py: TEST written from Fashion-MNIST's test split, a share of it copied into the
train folders, each copy edited by one transformation in turn."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.curate_leaks import TRANSFORMS, kind_of, plant_leaks
from msfkit.data.datasets import FASHION_MNIST_CLASSES, fashion_mnist_dir


@pytest.fixture(autouse=True)
def _needs_fashion_mnist():
    if not fashion_mnist_dir().is_dir():
        pytest.skip("Fashion-MNIST is not installed (scripts/setup.sh installs it)")


def grey(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L").resize((28, 28), Image.BILINEAR), dtype=np.float32)


def test_a_share_of_test_is_copied_into_train_each_copy_edited_one_way(tmp_path):
    test, train = tmp_path / "test", tmp_path / "train"
    for name in FASHION_MNIST_CLASSES:
        (train / name).mkdir(parents=True)
    planted = plant_leaks(test, train, 30, 0.3, np.random.default_rng(0))
    originals = sorted(p.relative_to(test).as_posix() for p in test.glob("*/*.png"))
    assert len(originals) == 30 and len(planted) == 9 and set(planted) <= set(originals)
    assert sorted(kind_of(c) for c in planted.values()) == sorted(TRANSFORMS * 3)
    pixels = np.stack([grey(test / name) for name in originals])
    for original, copy in planted.items():
        assert original.split("/")[0] == copy.split("/")[0]  # the copy sits in its own class's folder
        image, kind = Image.open(train / copy), kind_of(copy)
        assert image.format == ("JPEG" if kind == "jpeg" else "PNG")
        assert image.size == ((21, 21) if kind == "resize" else (28, 28))
        difference = np.abs(pixels - grey(train / copy)).mean(axis=(1, 2))
        assert originals[int(difference.argmin())] == original  # still that picture, of all of TEST ...
        assert difference.min() > 0  # ... and edited
