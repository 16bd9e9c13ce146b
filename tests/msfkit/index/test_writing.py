"""msfkit.index.writing: a failed write keeps the old index, --force only over an index, the lock,
temporaries of a killed run cleaned."""

from __future__ import annotations

import pytest

from msfkit.index import add_to_index, build_index, open_folder
from msfkit.models.errors import MsfkitError
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

D = 32


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
    from msfkit.index.writing import locked

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
