"""msfkit.curate.select: coverage and centres reach every cluster; the radius is measured alike for all."""

from __future__ import annotations

from pathlib import Path

import pytest

import msfkit
from msfkit.curate.neighbours import opened
from msfkit.curate.select import STRATEGIES, coverage_radius, select
from msfkit.models.errors import MsfkitError
from tests.msfkit.curate.planted import clusters
from tests.msfkit.index_stores import clustered_vectors, write_vector_store


@pytest.fixture
def five_clusters(tmp_path):
    x, which = clusters(30, 5, seed=0)  # 150 images in 5 far-apart clusters
    return write_vector_store(tmp_path / "s", x, shard_rows=40), which


@pytest.mark.parametrize("strategy", ["coverage", "centres"])
def test_a_budget_of_one_per_cluster_takes_one_of_each(five_clusters, strategy):
    store, which = five_clusters
    chosen = select(store, 5, strategy=strategy)
    assert len(chosen) == 5 and chosen.strategy == strategy
    assert sorted(which[chosen.rows["row"]]) == [0, 1, 2, 3, 4]
    assert chosen.radius < 0.1  # every image is near its cluster's chosen one


def test_coverage_keeps_a_smaller_radius_than_random_on_the_same_data(tmp_path):
    store = write_vector_store(tmp_path / "s", clustered_vectors(400, 16, clusters=8, seed=0))
    for budget in (4, 16, 40):
        radius = {s: select(store, budget, strategy=s, seed=1).radius for s in STRATEGIES}
        assert radius["coverage"] <= radius["random"], (budget, radius)
    assert select(store, 400, strategy="random").radius == pytest.approx(0.0, abs=1e-5)


def test_the_radius_is_the_farthest_distance_to_the_nearest_chosen_image(five_clusters):
    store, _ = five_clusters
    x = msfkit.open_store(store).vectors
    for strategy in STRATEGIES:
        chosen = select(store, 7, strategy=strategy, seed=2)
        rows = chosen.rows["row"].to_numpy()
        assert len(set(rows)) == 7
        expected = (1 - (x @ x[rows].T).max(axis=1)).max()
        assert chosen.radius == pytest.approx(expected, abs=1e-5)
        with opened(store) as index:
            assert coverage_radius(index, rows) == pytest.approx(chosen.radius)


def test_greedy_order_is_farthest_first_and_never_repeats_an_exact_copy(tmp_path):
    x, _ = clusters(10, 2, seed=0)
    x[:10] = x[0]  # cluster 0: ten exact copies
    store = write_vector_store(tmp_path / "s", x)
    chosen = select(store, 20, strategy="coverage")
    assert sorted(chosen.rows["row"]) == list(range(20))
    first, second = chosen.rows["row"][:2]
    assert (first < 10) != (second < 10)  # the second is in the other cluster: the farthest


def test_the_same_seed_chooses_the_same_images_and_the_rows_name_their_files(five_clusters):
    store, _ = five_clusters
    for strategy in STRATEGIES:
        a, b = select(store, 6, strategy=strategy, seed=3), select(store, 6, strategy=strategy, seed=3)
        assert list(a.rows["row"]) == list(b.rows["row"])
        assert [Path(p).name for p in a.rows["path"]] == [f"img_{r:05d}.jpg" for r in a.rows["row"]]
    assert list(select(store, 6, strategy="random", seed=4).rows["row"]) != list(a.rows["row"])


def test_a_budget_outside_the_collection_or_an_unknown_strategy_is_refused(five_clusters):
    store, _ = five_clusters
    with pytest.raises(MsfkitError, match=rf"^budget 151: between 1 and the 150 images of {store}$"):
        select(store, 151)
    with pytest.raises(MsfkitError, match="budget 0"):
        select(store, 0)
    with pytest.raises(MsfkitError, match="strategy 'best': one of coverage, centres, random"):
        select(store, 3, strategy="best")
