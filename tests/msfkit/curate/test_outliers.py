"""msfkit.curate.outliers: planted foreign vectors come first; on real photos, those without copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pandas.testing import assert_frame_equal

import msfkit
from msfkit.curate.outliers import COLUMNS, outliers
from msfkit.index import build_index, open_folder
from msfkit.models.errors import MsfkitError
from tests.msfkit.curate.planted import batch_among_clusters, clusters, with_far_points
from tests.msfkit.index_stores import clustered_vectors, write_vector_store


@pytest.fixture
def planted(tmp_path):
    x, _ = clusters(40, 4, seed=0)
    x, far = with_far_points(x, 3)
    return write_vector_store(tmp_path / "s", x, shard_rows=50), far


def test_planted_far_points_rank_first_and_are_nobodys_neighbour(planted):
    store, far = planted
    table = outliers(store, k=5)
    assert tuple(table.columns) == COLUMNS and len(table) == 163
    assert sorted(table["row"][:3]) == list(far)
    assert (table["score"][:3] > 0.8).all() and (table["score"][3:] < 0.1).all()
    assert (table["in_degree"][:3] == 0).all()
    assert list(table["rank"]) == list(range(1, 164)) and table["score"].is_monotonic_decreasing
    assert table["in_degree"].sum() == 163 * 5  # every image names 5 neighbours
    assert [Path(p).name for p in table["path"]] == [f"img_{r:05d}.jpg" for r in table["row"]]


def test_the_score_is_the_mean_cosine_distance_to_the_k_nearest(planted):
    store, _ = planted
    x = msfkit.open_store(store).vectors
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    expected = 1 - np.sort(sims, axis=1)[:, ::-1][:, :5].mean(axis=1)
    table = outliers(store, k=5).sort_values("row")
    assert np.allclose(table["score"], expected, atol=1e-5)


def test_top_keeps_the_first_rows_and_an_index_answers_as_its_store(planted, tmp_path):
    store, _ = planted
    build_index(store, tmp_path / "ix", kind="flat")
    top = msfkit.outliers(tmp_path / "ix", k=5, top=4)
    assert_frame_equal(top, outliers(store, k=5).head(4))
    with pytest.raises(MsfkitError, match="top must be >= 1"):
        outliers(store, top=0)


def test_on_real_photos_the_photos_without_copies_are_the_outliers(photo_index, photo_paths):
    index, _, _, _ = photo_index
    table = outliers(index, k=3)  # a photo with 3 planted copies has 3 near neighbours
    copied = {p.stem for p in photo_paths[:3]}
    alone = {Path(p).name for p in table["path"][:9]}
    assert alone == {p.name for p in photo_paths[3:12]}
    assert not any(Path(p).stem.split("_")[0] in copied for p in table["path"][:9])


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_an_approximate_index_lists_the_outliers_an_exact_search_does(kind, tmp_path):
    store = write_vector_store(tmp_path / "s", clustered_vectors(3000, 16, clusters=20, seed=0))
    build_index(store, tmp_path / "ix", kind=kind)
    folder = open_folder(tmp_path / "ix")
    tuned = dict(folder.info["search_params"])
    exact = outliers(store, top=20)
    assert sorted(outliers(folder, top=20)["row"]) == sorted(
        exact["row"]
    )  # hnsw at its own efSearch: 19 of 20
    assert folder.info["search_params"] == tuned  # and its own parameters are back


def test_mahalanobis_finds_foreign_images_that_are_each_others_neighbours(tmp_path):
    """k-NN distance ranks a tight batch of foreign vectors last (their neighbours are each other);
    the Mahalanobis score ranks them first, and is the squared distance under the ridged covariance."""
    from msfkit.curate.outliers import RIDGE

    store, foreign = batch_among_clusters(tmp_path / "s")
    assert not foreign & set(outliers(store, k=5, top=50)["row"])
    table = outliers(store, k=5, top=6, score="mahalanobis")
    assert set(table["row"]) == foreign and list(table.columns) == list(COLUMNS)
    v = msfkit.open_store(store).vectors.astype(np.float64)
    w, basis = np.linalg.eigh(np.cov((v - v.mean(0)).T))
    expected = (((v - v.mean(0)) @ (basis / np.sqrt(np.maximum(w, 0) + RIDGE * w.max()))) ** 2).sum(1)
    assert np.allclose(table["score"], expected[table["row"]], rtol=1e-6)
    assert msfkit.outliers(store, top=6, score="mahalanobis")["row"].tolist() == table["row"].tolist()


def test_mahalanobis_needs_more_images_than_dimensions_and_scores_are_named(tmp_path):
    store = write_vector_store(tmp_path / "s", clustered_vectors(12, 16, 3, seed=1))
    with pytest.raises(MsfkitError, match="12 images of 16 dimensions; the mahalanobis score needs more"):
        outliers(store, score="mahalanobis")
    with pytest.raises(MsfkitError, match="unknown outlier score 'lof'; expected one of knn, mahalanobis"):
        outliers(store, score="lof")
