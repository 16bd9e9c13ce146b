"""msfkit.serve.projection: the map's 2-D projection, streamed over a store of planted clusters."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import msfkit
from msfkit.serve import projection
from msfkit.serve.errors import Refused
from tests.msfkit.index_stores import write_vector_store

HAS_UMAP = importlib.util.find_spec("umap") is not None


@pytest.fixture(scope="module")
def two_clusters(tmp_path_factory):
    """300 vectors round two centres (rows 0-149 and 150-299), in shards of 64 rows, and the centres."""
    rng = np.random.default_rng(1)
    centres = 4 * rng.standard_normal((2, 32))
    x = np.repeat(centres, 150, axis=0) + 3 * rng.standard_normal((300, 32))
    root = tmp_path_factory.mktemp("clusters") / "store"
    return msfkit.open_store(write_vector_store(root, x.astype(np.float32), shard_rows=64))


def _separated(points: np.ndarray) -> bool:
    """Whether every point of the map lies nearer its own cluster's middle than the other's."""
    middles = points[:150].mean(axis=0), points[150:].mean(axis=0)
    nearer_a = np.linalg.norm(points - middles[0], axis=1) < np.linalg.norm(points - middles[1], axis=1)
    return bool(nearer_a[:150].all() and not nearer_a[150:].any())


def test_pca_fitted_on_a_sample_and_projected_block_by_block_separates_two_clusters(
    two_clusters, monkeypatch
):
    monkeypatch.setattr(projection, "SAMPLE", 50)  # fitted on 50 rows of 300 ...
    monkeypatch.setattr(projection, "BLOCK_ROWS", 40)  # ... projected 40 at a time, across shard edges
    found = projection.project(two_clusters, "pca")
    assert found.method == "pca" and found.points.shape == (300, 2) and found.points.dtype == np.float32
    assert np.isfinite(found.points).all() and _separated(found.points)
    assert found.points[:150, 0].max() < found.points[150:, 0].min() or (
        found.points[150:, 0].max() < found.points[:150, 0].min()
    )  # the first axis is the one between the clusters
    assert found.explained[0] > 5 * found.explained[1] and sum(found.explained) <= 1  # one axis between
    again = projection.project(two_clusters, "pca")
    np.testing.assert_array_equal(again.points, found.points)  # the same map every time


def test_pca_on_the_whole_store_is_numpys_pca_of_the_unit_vectors(two_clusters):
    x = two_clusters.vectors / np.linalg.norm(two_clusters.vectors, axis=1, keepdims=True)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vt[:2].T
    got = projection.project(two_clusters, "pca").points
    np.testing.assert_allclose(np.abs(got), np.abs(expected), atol=1e-4)  # each axis up to its sign


@pytest.mark.skipif(HAS_UMAP, reason="umap-learn is installed")
def test_umap_without_umap_learn_is_refused_naming_the_extra(two_clusters):
    assert projection.available_methods() == ["pca"]
    with pytest.raises(Refused, match=r"pip install 'msfkit\[umap\]'") as refused:
        projection.project(two_clusters, "umap")
    assert refused.value.status == 409


@pytest.mark.slow
@pytest.mark.skipif(not HAS_UMAP, reason="umap-learn is not installed (pip install 'msfkit[umap]')")
def test_umap_fitted_on_a_sample_places_the_other_rows_and_separates_two_clusters(two_clusters, monkeypatch):
    monkeypatch.setattr(projection, "SAMPLE", 120)
    found = projection.project(two_clusters, "umap")
    assert found.points.shape == (300, 2) and np.isfinite(found.points).all()
    assert _separated(found.points)


def test_an_unknown_method_is_refused():
    with pytest.raises(Refused, match="method='tsne': one of pca, umap"):
        projection.project(None, "tsne")
