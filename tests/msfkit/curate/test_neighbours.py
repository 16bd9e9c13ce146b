"""msfkit.curate.neighbours: an index or a store opened, and each image's k nearest OTHER images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msfkit.curate.neighbours import neighbour_blocks, neighbours_of, opened, source_name
from msfkit.index import build_index, open_folder
from msfkit.models.errors import MsfkitError
from tests.msfkit.curate.planted import clusters
from tests.msfkit.index_stores import write_vector_store


def test_an_image_is_never_its_own_neighbour_even_among_exact_copies(tmp_path):
    x, _ = clusters(20, 2, seed=0)
    x[5:10] = x[5]  # five exact copies: the own row ties with four others for first place
    store = write_vector_store(tmp_path / "s", x, shard_rows=7)
    with opened(store) as index:
        blocks = list(neighbour_blocks(index, 4, "s"))
    rows = np.concatenate([b[2] for b in blocks])
    sims = np.concatenate([b[1] for b in blocks])
    assert rows.shape == (40, 4) and (rows != np.arange(40)[:, None]).all()
    for i in range(5, 10):  # the other four copies, each at similarity 1
        assert set(rows[i]) == set(range(5, 10)) - {i}
        assert np.allclose(sims[i], 1.0, atol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first


def test_a_store_is_searched_through_a_temporary_index_removed_after(tmp_path):
    x, _ = clusters(10, 2, seed=0)
    store = write_vector_store(tmp_path / "s", x)
    with opened(store) as index:
        where = index.path
        assert where.is_dir() and len(index) == 20
    assert not where.exists()
    assert source_name(store) == str(store)


def test_an_index_folder_gives_the_same_neighbours_as_its_store(tmp_path):
    x, _ = clusters(15, 3, seed=2)
    store = write_vector_store(tmp_path / "s", x)
    build_index(store, tmp_path / "ix", kind="flat")
    with opened(tmp_path / "ix") as index, opened(store) as exact:
        a = np.concatenate([b[2] for b in neighbour_blocks(index, 5, "ix")])
        b = np.concatenate([b[2] for b in neighbour_blocks(exact, 5, "s")])
    assert (a == b).all()
    folder = open_folder(tmp_path / "ix")
    with opened(folder) as same:
        assert same is folder and source_name(folder) == str(folder.path)


def test_k_is_cut_to_the_other_images_and_one_image_is_refused(tmp_path):
    x, _ = clusters(3, 1, seed=0)
    with opened(write_vector_store(tmp_path / "three", x)) as index:
        (_, sims, rows, valid), *_ = neighbour_blocks(index, 10, "three")
        assert rows.shape == (3, 2) and valid.all()
    one = pytest.raises(MsfkitError, match=r"^one: holds 1 image\(s\); curation needs at least 2$")
    with opened(write_vector_store(tmp_path / "one", x[:1])) as index, one:
        next(neighbour_blocks(index, 10, "one"))


def test_neighbours_of_rows_in_the_order_given_are_the_nearest_others(tmp_path):
    x, _ = clusters(10, 3, seed=5)
    store = write_vector_store(tmp_path / "s", x, shard_rows=8)
    asked = [17, 3, 17, 29]  # unsorted, one twice
    pairs = neighbours_of(store, asked, 4)
    assert list(pairs["row"]) == [r for r in asked for _ in range(4)]
    assert list(pairs["rank"]) == [1, 2, 3, 4] * 4
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    for i, r in enumerate(asked):
        group = pairs.iloc[4 * i : 4 * i + 4]
        best = np.argsort(-sims[r], kind="stable")[:4]
        assert set(group["neighbour"]) == set(best) and r not in set(group["neighbour"])
        assert np.allclose(group["score"], sims[r, best], atol=1e-5)
    assert [Path(p).name for p in pairs["path"]] == [f"img_{n:05d}.jpg" for n in pairs["neighbour"]]
