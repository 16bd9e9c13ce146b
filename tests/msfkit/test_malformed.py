# ruff: noqa: E501 - the damage tables read best one case per line
"""Every malformed store or index file msfkit reads is one `Error:` line naming the file, a non-zero
exit, and nothing else changed: real folders, damaged on purpose, read by the installed command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msfkit.index import build_index
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


def _json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _short_meta(store: Path) -> None:
    path = store / "meta" / "00000.parquet"
    pq.write_table(pq.read_table(path).slice(0, 10), path)


STORE_DAMAGE = {
    "manifest is a list": (lambda s: (s / "manifest.json").write_text("[1, 2]"), "a JSON object, not list"),
    "manifest without model": (lambda s: _json(s / "manifest.json", lambda m: {**m, "model": None}),
                               "field 'model' must be a dict"),
    "dim is text": (lambda s: _json(s / "manifest.json", lambda m: {**m, "dim": "abc"}), "field 'dim' must be a int"),
    "meta is garbage": (lambda s: (s / "meta" / "00000.parquet").write_bytes(b"PAR1 not really"),
                        "shard 00000 is missing or damaged"),
    "meta shorter than vectors": (_short_meta, "meta/00000.parquet has 10 rows, the manifest says 120"),
    "shard name outside": (lambda s: _json(s / "manifest.json", lambda m: {**m, "shards": [{"name": "../x", "rows": 1}]}),
                           "a shard entry needs a digit name"),
}  # fmt: skip


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed")
    store = write_vector_store(root / "store", clustered_vectors(120, 16, 4, seed=0))
    build_index(store, root / "index", kind="flat")
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(r: subprocess.CompletedProcess, where: str, message: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("Error: ") and where in r.stderr and message in r.stderr, r.stderr


@pytest.mark.parametrize("damage", sorted(STORE_DAMAGE))
def test_a_damaged_store_is_one_line_and_builds_nothing(folders, tmp_path, damage):
    store = tmp_path / "store"
    shutil.copytree(folders / "store", store)
    change, message = STORE_DAMAGE[damage]
    change(store)
    before = _snapshot(store)
    r = subprocess.run([MSFKIT, "index", store, "-o", tmp_path / "ix"], capture_output=True, text=True)
    _one_error_line(r, str(store), message)
    assert not (tmp_path / "ix").exists() and _snapshot(store) == before


INDEX_DAMAGE = {
    "index.json is a list": (lambda i: (i / "index.json").write_text("[]"), "format_version None"),
    "no search_params": (lambda i: _json(i / "index.json", lambda m: {k: v for k, v in m.items() if k != "search_params"}),
                         "field 'search_params' must be a dict"),
    "no sources": (lambda i: _json(i / "index.json", lambda m: {k: v for k, v in m.items() if k != "sources"}),
                   "field 'sources' must be a list"),
    "rows point outside": (lambda i: pq.write_table(pq.read_table(i / "rows.parquet").set_column(
        0, "source", pa.array(np.full(120, 5, np.int32))), i / "rows.parquet"), "rows point outside"),
}  # fmt: skip


@pytest.mark.parametrize("damage", sorted(INDEX_DAMAGE))
def test_a_damaged_index_is_one_line(folders, tmp_path, damage):
    index = tmp_path / "index"
    shutil.copytree(folders / "index", index)
    change, message = INDEX_DAMAGE[damage]
    change(index)
    if damage == "rows point outside":  # keep index.json's record of the file's size true
        _json(index / "index.json", lambda m: {**m, "files": {**m["files"], "rows.parquet": (index / "rows.parquet").stat().st_size}})
    before = _snapshot(index)
    r = subprocess.run([MSFKIT, "search", index, f"{folders / 'store'}:0"], capture_output=True, text=True)
    _one_error_line(r, str(index), message)
    assert _snapshot(index) == before
