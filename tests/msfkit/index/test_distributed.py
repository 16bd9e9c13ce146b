"""msfkit.index.distributed: an on-disk index whose pieces are filled in Ray tasks answers exactly as
the same index built in one process; without Ray or a cluster, one line."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from msfkit.index import build_index, open_folder
from msfkit.index.distributed import ray_missing
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

N, D = 3000, 32


def centroids(index) -> np.ndarray:
    ivf = faiss.extract_index_ivf(index)
    return faiss.rev_swig_ptr(faiss.downcast_index(ivf.quantizer).get_xb(), ivf.nlist * ivf.d).copy()


@pytest.mark.ray
def test_pieces_filled_by_ray_tasks_answer_as_the_index_built_in_one_process(ray_local, tmp_path):
    x = clustered_vectors(N + 50, D, clusters=20, seed=0, spread=1.0)
    store = write_vector_store(tmp_path / "s", x[:N], shard_rows=400)
    one = build_index(store, tmp_path / "one", kind="ivf", recall=0.9)
    merged = build_index(store, tmp_path / "ray", kind="ivf", recall=0.9, engine="ray", piece_rows=800)
    assert merged["storage"] == "disk" and merged["build"]["engine"] == "ray"
    assert merged["build"]["pieces"] == 4  # 8 shards of 400 rows, 2 to a piece
    assert merged["search_params"] == one["search_params"]
    a, b = open_folder(tmp_path / "ray"), open_folder(tmp_path / "one")
    np.testing.assert_array_equal(centroids(a.index), centroids(b.index))  # one trained quantizer
    for got, want in zip(a.search_vectors(x[N:], 10), b.search_vectors(x[N:], 10), strict=True):
        np.testing.assert_array_equal(got, want)  # ids and distances, exactly


def test_the_message_without_ray_names_the_extra():
    assert ray_missing("ray") == "--engine ray needs Ray (ray is missing): pip install 'msfkit[ray]'"
    assert "(grpc is missing)" in ray_missing("grpc")
