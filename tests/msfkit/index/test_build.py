"""msfkit.index: every index type on stores of chosen vectors, the recorded recall, --add, the auto choice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from msfkit.index import add_to_index, build_index, open_folder
from msfkit.index.plan import choose_index
from msfkit.index.recall import measure_recall, query_rows
from msfkit.models.errors import MsfkitError
from msfkit.runtime import parse_size
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


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_add_gives_the_results_of_building_from_both_stores(tmp_path, kind):
    x = clustered_vectors(1500, D, clusters=10, seed=3)
    a = write_vector_store(tmp_path / "a", x[:1000], prefix="a")
    b = write_vector_store(tmp_path / "b", x[1000:], prefix="b", source_root=tmp_path / "other")
    both = build_index([a, b], tmp_path / "both", kind=kind, recall=1.0)
    build_index(a, tmp_path / "grown", kind=kind, recall=1.0)
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
    store, x, _ = data
    build_index(store, tmp_path / "ix", kind="flat")
    other = write_vector_store(tmp_path / "o", x[:10], model={"name": None, "fingerprint": "other"})
    with pytest.raises(MsfkitError, match="embedded with model"):
        add_to_index(tmp_path / "ix", other)
    with pytest.raises(MsfkitError, match="already in the index"):
        add_to_index(tmp_path / "ix", store)
    assert open_folder(tmp_path / "ix").info["count"] == N


@pytest.mark.parametrize(
    ("n", "d", "memory", "kind"),
    [
        (10_000, 512, "4GB", "flat"),  # cheap: exact
        (100_000, 2048, "4GB", "hnsw"),  # a graph builds quickly and fits
        (100_000, 2048, "512MB", "ivfpq"),  # 800 MB of vectors do not fit 512 MB
        (1_000_000, 512, "4GB", "ivf"),  # too many for a quick graph, the vectors fit
        (1_000_000, 512, "1GB", "ivfpq"),
    ],
)
def test_auto_choice_follows_size_and_memory_budget(n, d, memory, kind):
    plan = choose_index(n, d, parse_size(memory))
    assert plan.type == kind
    assert plan.bytes <= parse_size(memory)


def test_a_forced_type_over_the_budget_is_refused():
    with pytest.raises(MsfkitError, match="over the memory budget"):
        choose_index(1_000_000, 512, parse_size("1GB"), "flat")
    with pytest.raises(MsfkitError, match="expected a size"):
        parse_size("lots")


def test_damaged_or_foreign_index_folders_are_refused(data, tmp_path):
    store, _, _ = data
    build_index(store, tmp_path / "ix", kind="flat")
    build_index(
        write_vector_store(tmp_path / "s2", clustered_vectors(50, D, 3, 1)), tmp_path / "ix2", kind="flat"
    )
    with pytest.raises(MsfkitError, match="no such index folder"):
        open_folder(tmp_path / "nope")
    with pytest.raises(MsfkitError, match="missing index.faiss"):
        open_folder(store)
    (tmp_path / "ix" / "notes.txt").write_text("x")
    with pytest.raises(MsfkitError, match="did not write: notes.txt"):
        open_folder(tmp_path / "ix")
    (tmp_path / "ix" / "notes.txt").unlink()
    (tmp_path / "ix" / "index.faiss").write_bytes((tmp_path / "ix2" / "index.faiss").read_bytes())
    with pytest.raises(MsfkitError, match="does not belong"):
        open_folder(tmp_path / "ix")
    info = json.loads((tmp_path / "ix2" / "index.json").read_text())
    (tmp_path / "ix2" / "index.faiss").write_bytes(b"garbage" * 10)
    info["files"]["index.faiss"] = 70
    (tmp_path / "ix2" / "index.json").write_text(json.dumps(info))
    with pytest.raises(MsfkitError, match="unreadable faiss index"):
        open_folder(tmp_path / "ix2")
    (tmp_path / "ix2" / "index.json").write_text("{not json")
    with pytest.raises(MsfkitError, match="index.json: unreadable"):
        open_folder(tmp_path / "ix2")


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


def test_a_write_that_fails_half_way_leaves_the_old_index_whole(tmp_path, monkeypatch):
    import faiss

    x = clustered_vectors(300, D, clusters=4, seed=5)
    a = write_vector_store(tmp_path / "a", x[:200], prefix="a")
    b = write_vector_store(tmp_path / "b", x[200:], prefix="b")
    build_index(a, tmp_path / "ix", kind="flat")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ix").iterdir()}

    monkeypatch.setattr(faiss, "write_index", _failing_after(faiss.write_index))
    with pytest.raises(OSError, match="No space left"):
        add_to_index(tmp_path / "ix", b)
    assert {p.name: p.read_bytes() for p in (tmp_path / "ix").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "ix"]
    assert open_folder(tmp_path / "ix").info["count"] == 200


def _failing_after(write):
    """faiss.write_index that writes its file and then fails, as a full disk would."""

    def failing(index, path):
        write(index, path)
        raise OSError(28, "No space left on device")

    return failing


def test_force_replaces_an_index_or_an_empty_folder_and_nothing_else(tmp_path):
    store = write_vector_store(tmp_path / "store", clustered_vectors(300, 16, 5, seed=1))
    build_index(store, tmp_path / "ix", kind="flat")
    build_index(store, tmp_path / "ix", kind="flat", overwrite=True)  # an index: replaced
    (tmp_path / "empty").mkdir()
    build_index(store, tmp_path / "empty", kind="flat", overwrite=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    for target in (tmp_path / "mine", store, tmp_path):  # a user's folder, the store itself, the parent
        before = sorted(p.name for p in target.iterdir())
        with pytest.raises(MsfkitError, match="not an msfkit index; --force only replaces an index folder"):
            build_index(store, target, kind="flat", overwrite=True)
        assert sorted(p.name for p in target.iterdir()) == before
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"


def test_a_second_writer_on_an_index_stops_at_once_and_loses_nothing(tmp_path):
    from msfkit.index.folder import locked

    a = write_vector_store(tmp_path / "a", clustered_vectors(200, 16, 5, seed=2))
    b = write_vector_store(tmp_path / "b", clustered_vectors(200, 16, 5, seed=3))
    build_index(a, tmp_path / "ix", kind="flat")
    with locked(tmp_path / "ix"):  # what a running `msfkit index --add` holds
        with pytest.raises(MsfkitError, match="being written by another msfkit index"):
            add_to_index(tmp_path / "ix", b)
        with pytest.raises(MsfkitError, match="being written by another msfkit index"):
            build_index(b, tmp_path / "ix", kind="flat", overwrite=True)
    assert add_to_index(tmp_path / "ix", b)["count"] == 400
