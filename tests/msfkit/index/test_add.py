"""msfkit.index.add: adding stores gives the index built from all of them, in memory and on disk;
a store of another model or one already held is refused."""

from __future__ import annotations

import numpy as np
import pytest

from msfkit.index import add_to_index, build_index, open_folder
from msfkit.models.errors import MsfkitError
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

N, D = 2000, 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 2,000 x 32 store of clustered vectors (3 shards)."""
    x = clustered_vectors(N, D, clusters=20, seed=0, spread=1.0)
    return write_vector_store(tmp_path_factory.mktemp("store") / "s", x, shard_rows=700), x


@pytest.mark.parametrize(
    ("kind", "workload"), [("flat", "interactive"), ("ivf", "interactive"), ("ivf", "batch")]
)
def test_add_gives_the_results_of_building_from_both_stores(tmp_path, kind, workload):
    x = clustered_vectors(1500, D, clusters=10, seed=3)
    a = write_vector_store(tmp_path / "a", x[:1000], prefix="a")
    b = write_vector_store(tmp_path / "b", x[1000:], prefix="b", source_root=tmp_path / "other")
    both = build_index([a, b], tmp_path / "both", kind=kind, workload=workload, recall=1.0)
    build_index(a, tmp_path / "grown", kind=kind, workload=workload, recall=1.0)
    grown = add_to_index(tmp_path / "grown", b)
    assert grown["count"] == both["count"] == 1500
    assert [s["manifest_hash"] for s in grown["sources"]] == [s["manifest_hash"] for s in both["sources"]]
    q = clustered_vectors(30, D, clusters=10, seed=3)
    ia, ib = open_folder(tmp_path / "both"), open_folder(tmp_path / "grown")
    _, ra = ia.search_vectors(q, 10)
    _, rb = ib.search_vectors(q, 10)
    np.testing.assert_array_equal(np.sort(ra, 1), np.sort(rb, 1))
    assert ia.absolute_paths(ra[0]) == ib.absolute_paths(ra[0])
    assert ib.absolute_paths([1200])[0] == str(tmp_path / "other" / "b_00200.jpg")
    assert grown["recall"]["recall_at_10"] == 1.0 and not grown["recall"]["stale"]


def test_add_refuses_a_store_of_another_model_and_one_already_held(data, tmp_path):
    store, x = data
    build_index(store, tmp_path / "ix", kind="flat")
    other = write_vector_store(tmp_path / "o", x[:10], model={"name": None, "fingerprint": "other"})
    different = "^the store and the index .* come from different models: fingerprint other "
    with pytest.raises(MsfkitError, match=different):
        add_to_index(tmp_path / "ix", other)
    with pytest.raises(MsfkitError, match="already in the index"):
        add_to_index(tmp_path / "ix", store)
    assert open_folder(tmp_path / "ix").info["count"] == N


def test_adding_to_an_index_on_disk_answers_as_adding_in_memory(tmp_path):
    x = clustered_vectors(3000, D, clusters=10, seed=3)
    a = write_vector_store(tmp_path / "a", x[:2000], shard_rows=500, prefix="a")
    b = write_vector_store(tmp_path / "b", x[2000:], shard_rows=400, prefix="b")
    build_index(a, tmp_path / "ram", kind="ivf", recall=0.9)
    build_index(a, tmp_path / "disk", kind="ivf", recall=0.9, on_disk=True)
    in_memory = add_to_index(tmp_path / "ram", b)
    on_disk = add_to_index(tmp_path / "disk", b)
    assert on_disk["count"] == in_memory["count"] == 3000 and on_disk["storage"] == "disk"
    assert on_disk["search_params"] == in_memory["search_params"] and not on_disk["recall"]["stale"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "disk", "ram"]  # no piece left
    q = clustered_vectors(40, D, clusters=10, seed=4)
    disk, ram = open_folder(tmp_path / "disk"), open_folder(tmp_path / "ram")
    for got, want in zip(disk.search_vectors(q, 10), ram.search_vectors(q, 10), strict=True):
        np.testing.assert_array_equal(got, want)  # ids and distances, exactly
    assert disk.absolute_paths([2100]) == ram.absolute_paths([2100])
