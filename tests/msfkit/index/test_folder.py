"""msfkit.index.folder: damaged or foreign folders refused, --force only over an index, the lock."""

from __future__ import annotations

import json

import pytest

from msfkit.index import add_to_index, build_index, open_folder
from msfkit.models.errors import MsfkitError
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

N, D = 2000, 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 2,000 x 32 store of clustered vectors (3 shards) and 220 unindexed queries from the same clusters."""
    x = clustered_vectors(N + 220, D, clusters=20, seed=0, spread=1.0)
    root = write_vector_store(tmp_path_factory.mktemp("store") / "s", x[:N], shard_rows=700)
    return root, x[:N], x[N:]


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


def test_a_write_that_fails_half_way_leaves_the_old_index_whole(tmp_path, monkeypatch):
    import faiss

    x = clustered_vectors(300, D, clusters=4, seed=5)
    a = write_vector_store(tmp_path / "a", x[:200], prefix="a")
    b = write_vector_store(tmp_path / "b", x[200:], prefix="b")
    build_index(a, tmp_path / "ix", kind="flat")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ix").iterdir()}

    monkeypatch.setattr(faiss, "write_index", _failing_after(faiss.write_index))
    with pytest.raises(MsfkitError, match="disk full: cannot write the index"):
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



def test_temporaries_a_killed_run_left_are_cleaned_by_the_next(tmp_path):
    store = write_vector_store(tmp_path / "store", clustered_vectors(100, D, clusters=4, seed=6))
    for name in (".ix.tmp4242", ".ix.old4242"):  # what kill -9 during a write leaves
        (tmp_path / name).mkdir()
        (tmp_path / name / "index.faiss").write_bytes(b"half")
    build_index(store, tmp_path / "ix", kind="flat")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix", "store"]
