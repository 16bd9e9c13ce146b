"""msfkit.index.pieces: pieces of whole shards, filled apart and merged on disk, answer as one index."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from msfkit.index.faiss_ops import normalized
from msfkit.index.pieces import Stacked, fill_piece, merge_on_disk, plan_pieces, write_piece
from msfkit.store import open_store
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

N, D = 2000, 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 2,000 x 32 store in shards of 700 rows, an IVF trained on part of it, and 40 queries."""
    x = clustered_vectors(N + 40, D, clusters=20, seed=0, spread=1.0)
    root = write_vector_store(tmp_path_factory.mktemp("store") / "s", x[:N], shard_rows=700)
    trained = faiss.index_factory(D, "IVF16,Flat", faiss.METRIC_INNER_PRODUCT)
    trained.train(x[:1000])
    trained.nprobe = 4
    return root, x[:N], x[N:], trained


def test_pieces_are_runs_of_whole_shards_covering_the_store(data):
    root, _, _, _ = data
    store = open_store(root)
    spans = [(p.first, p.last, p.start, p.end) for p in plan_pieces(store, piece_rows=1000)]
    assert spans == [(0, 2, 0, 1400), (2, 3, 1400, 2000)]
    assert [(p.start, p.end) for p in plan_pieces(store, piece_rows=1)] == [
        (0, 700),
        (700, 1400),
        (1400, 2000),
    ]
    assert [(p.start, p.end) for p in plan_pieces(store)] == [(0, 2000)]


def test_pieces_merged_on_disk_answer_as_the_index_filled_in_one_process(data, tmp_path):
    root, x, q, trained = data
    store = open_store(root)
    held = np.array([5, 800, 1999])
    xn = normalized(x)  # as a build adds them
    one = faiss.clone_index(trained)
    one.add_with_ids(xn, np.arange(N))
    blob = faiss.serialize_index(trained)
    files = [tmp_path / f"{p.number}.faiss" for p in plan_pieces(store, piece_rows=1)]
    for piece, file in zip(plan_pieces(store, piece_rows=1), files, strict=True):
        fill_piece(blob, [str(root)], piece, held, str(file))
    with Stacked(trained, files) as view:  # without the held rows: as `one` without them
        without = faiss.clone_index(trained)
        keep = np.setdiff1d(np.arange(N), held)
        without.add_with_ids(xn[keep], keep)
        for a, b in zip(view.index.search(q, 10), without.search(q, 10), strict=True):
            np.testing.assert_array_equal(a, b)
    files.append(write_piece(trained, x[held], held, tmp_path / "held.faiss"))
    merged = merge_on_disk(trained, files, tmp_path / "index.ivfdata")
    assert merged.ntotal == N and (tmp_path / "index.ivfdata").stat().st_size == N * (4 * D + 8)
    for a, b in zip(merged.search(q, 10), one.search(q, 10), strict=True):
        np.testing.assert_array_equal(a, b)  # ids and distances, exactly
    _, found = merged.search(normalized(x[held]), 1)
    np.testing.assert_array_equal(found[:, 0], held)


def test_a_piece_may_span_two_stores(data, tmp_path):
    _, x, q, trained = data
    a = write_vector_store(tmp_path / "a", x[:700], shard_rows=400, prefix="a")
    b = write_vector_store(tmp_path / "b", x[700:1300], shard_rows=400, prefix="b")
    store = open_store([a, b])
    pieces = plan_pieces(store, piece_rows=1000)
    assert [(p.first, p.last, p.start, p.end) for p in pieces] == [(0, 3, 0, 1100), (3, 4, 1100, 1300)]
    files = [tmp_path / f"{p.number}.faiss" for p in pieces]
    blob = faiss.serialize_index(trained)
    for piece, file in zip(pieces, files, strict=True):
        fill_piece(blob, [str(a), str(b)], piece, np.zeros(0, np.int64), str(file))
    merged = merge_on_disk(trained, files, tmp_path / "index.ivfdata")
    one = faiss.clone_index(trained)
    one.add_with_ids(normalized(x[:1300]), np.arange(1300))
    for got, want in zip(merged.search(q, 10), one.search(q, 10), strict=True):
        np.testing.assert_array_equal(got, want)
