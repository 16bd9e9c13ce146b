"""msfkit.serve.rows: the rows the server and its duplicates view share, read from the photo index."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import msfkit
from msfkit.serve.errors import NotFound
from msfkit.serve.rows import Rows


@pytest.fixture(scope="module")
def index(photo_index):
    return msfkit.open_index(photo_index[0])


@pytest.fixture(scope="module")
def rows(index):
    return Rows.of(index)


def test_paths_and_labels_are_the_indexs_own(rows, index):
    assert len(rows) == len(index) == 21
    assert rows.paths.tolist() == index.absolute_paths(np.arange(len(index)))
    hit = rows.hit(4)
    expected = {"row": 4, "path": rows.paths[4], "rel": hit["name"], "name": hit["name"], "label": None}
    assert hit == dict(expected, folder="photos")  # the photos lie at the store's source root
    assert rows.paths[4].endswith("/" + hit["name"])


def test_paths_are_relative_to_the_root_the_stores_share(planted):
    """The planted index holds two stores whose source roots are data/train and data/test."""
    index = msfkit.open_index(planted)
    rows = Rows.of(index)
    assert rows.rel[0] == "train/img_00000.jpg" and rows.rel[31] == "test/img_00000.jpg"
    root = str(planted.parent / "data")
    assert all(path == f"{root}/{rel}" for path, rel in zip(rows.paths, rows.rel, strict=True))
    assert rows.info(31)["rel"] == "test/img_00000.jpg"


def test_vectors_come_in_the_order_asked_repeats_included(rows, photo_index):
    store = msfkit.open_store(photo_index[1])
    got = rows.vectors([5, 0, 5, 20])
    assert got.shape == (4, store.dim) and got.dtype == np.float32
    np.testing.assert_array_equal(got, store.take(np.array([0, 5, 20]))[[1, 0, 1, 2]])


def test_info_reads_the_files_facts_and_a_row_out_of_range_is_not_found(rows):
    info = rows.info(3)
    with Image.open(info["path"]) as im:
        assert (info["width"], info["height"]) == im.size
    for bad in (-1, 21, 10**12):
        with pytest.raises(NotFound, match="the index holds rows 0 to 20"):
            rows.vectors([0, bad])
        with pytest.raises(NotFound):
            rows.path(bad)
