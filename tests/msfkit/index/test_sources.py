"""msfkit.index.sources: an index's stores are opened once, and that one opening answers both whether
the index is out of date and whether its stores can stand in for its vectors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import msfkit.store.reader
from msfkit.index import build_index, open_folder
from msfkit.models.errors import MsfkitError
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

D = 16


@pytest.fixture
def two_stores(tmp_path):
    x = clustered_vectors(1500, D, clusters=5, seed=1)
    a = write_vector_store(tmp_path / "a", x[:1000], shard_rows=500, prefix="a")
    b = write_vector_store(tmp_path / "b", x[1000:], prefix="b")
    build_index([a, b], tmp_path / "ix", kind="flat")
    return x, a, b, tmp_path / "ix"


def test_each_store_is_opened_once_for_the_check_and_the_rows(two_stores, monkeypatch):
    x, a, b, ix = two_stores
    opened = []
    real = msfkit.store.reader.open_parts
    monkeypatch.setattr(msfkit.store.reader, "open_parts", lambda root: opened.append(root) or real(root))
    index = open_folder(ix)
    np.testing.assert_array_equal(index.store.take(np.array([0, 1200])), x[[0, 1200]])
    assert sorted(map(str, opened)) == sorted(s["store"] for s in index.info["sources"])


def test_a_store_that_grew_is_current_and_one_whose_rows_changed_is_not(two_stores, tmp_path):
    x, a, b, ix = two_stores
    more = clustered_vectors(300, D, clusters=5, seed=2)
    write_vector_store(a, np.concatenate([x[:1000], more]), shard_rows=500, prefix="a")  # a third shard
    index = open_folder(ix)
    with pytest.raises(MsfkitError, match="the stores this index was built from are gone or changed"):
        index.store  # noqa: B018 - the vectors can no longer stand in for the index's rows
    shutil.rmtree(a)
    write_vector_store(a, x[:1000], shard_rows=400, prefix="a")  # the same rows, cut otherwise
    with pytest.raises(MsfkitError, match=f"index {ix} is out of date with {a}; rebuild with msfkit index"):
        open_folder(ix)


def test_a_store_that_is_gone_leaves_the_index_searchable(two_stores):
    x, a, b, ix = two_stores
    shutil.rmtree(b)
    index = open_folder(ix)
    _, rows = index.search_vectors(x[1200:1201], 1)
    assert rows[0, 0] == 1200
    with pytest.raises(MsfkitError, match=f"gone or changed .*{b}"):
        index.store  # noqa: B018
