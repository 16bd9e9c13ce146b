"""bench/curate_collection.py plants the issue's three kinds of foreign image, in equal shares."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from bench.curate_collection import foreign_images

PHOTOS = Path(__file__).resolve().parents[2] / "data" / "photos"


def test_foreign_images_are_an_equal_share_of_each_kind_grey_at_28_px():
    made = foreign_images(8, PHOTOS, np.random.default_rng(0))
    assert Counter(kind for kind, _ in made) == {"photos": 3, "digits": 3, "noise": 2}
    assert all(im.mode == "L" and im.size == (28, 28) for _, im in made)
    digits = [np.asarray(im) for kind, im in made if kind == "digits"]
    assert all(d.max() > 100 and (d < 30).mean() > 0.2 for d in digits)  # bright strokes on black
    only = foreign_images(4, PHOTOS, np.random.default_rng(0), ("noise",))
    assert [kind for kind, _ in only] == ["noise"] * 4
