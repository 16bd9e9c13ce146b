"""msfkit.index.folder: damaged or foreign folders refused."""

from __future__ import annotations

import json

import pytest

from msfkit.index import build_index, open_folder
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


def test_row_cells_read_one_by_one_or_as_one_array_agree(data, tmp_path, monkeypatch):
    """A search reads only its hits' cells, one by one (no pandas); many rows are read as one array.
    Both ways give the DataFrame's values, and -1 (no hit) has no path."""
    import msfkit.store.shards as shards
    from msfkit.store.shards import cells

    labels = [None if i % 7 == 0 else f"class {i % 3}" for i in range(50)]
    store = write_vector_store(tmp_path / "s", clustered_vectors(50, D, 3, 1), labels=labels)
    build_index(store, tmp_path / "ix", kind="flat")
    ix = open_folder(tmp_path / "ix")
    rows = [49, 0, 7, 7, 21]
    one_by_one = {name: cells(ix.table, name, rows) for name in ("source", "path", "label")}
    paths = ix.absolute_paths([[49, -1], [0, 21]])
    monkeypatch.setattr(shards, "FEW_CELLS", 0)
    assert {name: cells(ix.table, name, rows) for name in ("source", "path", "label")} == one_by_one
    assert ix.absolute_paths([[49, -1], [0, 21]]) == paths
    df = ix.rows
    assert one_by_one["label"] == [None, None, None, None, None]
    assert one_by_one["path"] == df["path"].iloc[rows].tolist()
    assert cells(ix.table, "label", [1, 2]) == ["class 1", "class 2"] == df["label"].iloc[[1, 2]].tolist()
    assert paths[1] is None and paths[0].endswith(one_by_one["path"][0])
