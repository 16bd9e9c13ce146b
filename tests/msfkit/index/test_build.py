"""msfkit.index.build: every index type on stores of chosen vectors, the recorded recall."""

from __future__ import annotations

import numpy as np
import pytest

from msfkit.index import build_index, open_folder
from msfkit.index.recall import measure_recall, query_rows
from msfkit.models.errors import MsfkitError
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

N, D = 2000, 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 2,000 x 32 store of clustered vectors (3 shards) and 220 unindexed queries from the same clusters."""
    x = clustered_vectors(N + 220, D, clusters=20, seed=0, spread=1.0)
    root = write_vector_store(tmp_path_factory.mktemp("store") / "s", x[:N], shard_rows=700)
    return root, x[:N], x[N:]


def exact_top(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(q @ x.T), axis=1)[:, :k]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_each_type_tuned_to_full_recall_returns_the_exact_neighbours(data, tmp_path, kind):
    store, x, q = data
    info = build_index(store, tmp_path / "ix", kind=kind, recall=1.0)
    index = open_folder(tmp_path / "ix")
    assert info["type"] == kind and index.info == info
    scores, rows = index.search_vectors(q[:20], 10)
    np.testing.assert_array_equal(np.sort(rows, 1), np.sort(exact_top(x, q[:20], 10), 1))
    np.testing.assert_allclose(scores, np.take_along_axis(q[:20] @ x.T, rows, 1), atol=1e-5)


def test_ivfpq_finds_the_stored_vector_a_near_copy_came_from(data, tmp_path):
    store, x, _ = data
    info = build_index(store, tmp_path / "ix", kind="ivfpq", recall=0.5)
    assert info["factory"].startswith("IVF") and ",PQ" in info["factory"]
    rng = np.random.default_rng(1)
    picked = rng.choice(N, 50, replace=False)
    _, rows = open_folder(tmp_path / "ix").search_vectors(x[picked] + 0.01 * rng.standard_normal((50, D)), 1)
    assert (rows[:, 0] == picked).mean() >= 0.9


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
@pytest.mark.slow
def test_recorded_recall_is_what_an_independent_measurement_gives(data, tmp_path, kind):
    store, x, _ = data
    info = build_index(store, tmp_path / "ix", kind=kind, recall=0.9)
    index = open_folder(tmp_path / "ix")
    # the protocol, recomputed with numpy: held-out rows against all the other rows. An IVF list scan
    # does not depend on the other vectors in the list, so the held-out rows (added after measuring)
    # only have to be filtered out of the final index's answers.
    held = query_rows(N, info["recall"]["seed"])
    sims = x[held] @ x.T
    sims[:, held] = -np.inf
    tenth = -np.sort(-sims, axis=1)[:, 9]
    _, found = index.search_vectors(x[held], 10 + len(held))
    found = np.array([[r for r in line if r not in set(held)][:10] for line in found])
    # correct: as similar as the exact 10th (within float error, so near-ties are not misses)
    recall = (np.take_along_axis(sims, found, 1) >= tenth[:, None] - 1e-5).mean()
    assert info["recall"]["recall_at_10"] == pytest.approx(recall, abs=1e-4)
    assert info["recall"]["target_met"] == (recall >= 0.9)
    assert info["recall"]["latency_ms_median"] > 0 and info["recall"]["qps"] > 0


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq"])
def test_recorded_recall_holds_for_new_queries(data, tmp_path, kind):
    store, _, q = data
    info = build_index(store, tmp_path / "ix", kind=kind, recall=0.9)
    fresh = measure_recall(open_folder(tmp_path / "ix"), q[20:])
    assert fresh == pytest.approx(info["recall"]["recall_at_10"], abs=0.05)
    assert fresh == 1.0 if kind == "flat" else fresh < 1.0 or info["recall"]["recall_at_10"] == 1.0


def test_a_batch_workload_index_is_tuned_and_searched_like_any_ivf(data, tmp_path):
    store, x, q = data
    info = build_index(store, tmp_path / "ix", kind="ivf", workload="batch", recall=1.0)
    assert "_HNSW32," in info["factory"] and info["build"]["workload"] == "batch"
    _, rows = open_folder(tmp_path / "ix").search_vectors(q[:20], 10)
    np.testing.assert_array_equal(np.sort(rows, 1), np.sort(exact_top(x, q[:20], 10), 1))


def test_held_out_queries_are_not_in_the_ivf_training_sample(data, tmp_path, monkeypatch):
    import faiss

    store, x, _ = data
    trained = []
    original = faiss.IndexIVFFlat.train
    monkeypatch.setattr(
        faiss.IndexIVFFlat, "train", lambda self, v: (trained.append(v.copy()), original(self, v))[1]
    )
    info = build_index(store, tmp_path / "ix", kind="ivf")
    rows = query_rows(N, info["recall"]["seed"])
    sample = trained[0]
    assert len(sample) == info["build"]["train_rows"]
    assert not (np.abs(sample @ x[rows].T - 1) < 1e-6).any()


def test_an_existing_folder_is_kept_unless_forced_and_no_temporary_is_left(data, tmp_path):
    store, _, _ = data
    build_index(store, tmp_path / "ix", kind="flat")
    with pytest.raises(MsfkitError, match="already exists"):
        build_index(store, tmp_path / "ix", kind="hnsw")
    assert open_folder(tmp_path / "ix").info["type"] == "flat"
    build_index(store, tmp_path / "ix", kind="hnsw", overwrite=True)
    assert open_folder(tmp_path / "ix").info["type"] == "hnsw"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]


def test_a_failed_build_leaves_nothing_behind(data, tmp_path):
    store, _, _ = data
    with pytest.raises(MsfkitError, match="over the memory budget"):
        build_index(store, tmp_path / "ix", kind="flat", memory="1KB")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.gpu
def test_gpu_index_matches_cpu(data, tmp_path):
    import faiss

    if faiss.get_num_gpus() == 0:
        pytest.skip("faiss sees no GPU")
    store, x, q = data
    info = build_index(store, tmp_path / "ix", kind="ivf", recall=1.0)
    assert info["build"]["device"] == "gpu"
    _, rows = open_folder(tmp_path / "ix").search_vectors(q, 10)
    np.testing.assert_array_equal(np.sort(rows, 1), np.sort(exact_top(x, q, 10), 1))
