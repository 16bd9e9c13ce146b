# ruff: noqa: E501 - the damage tables read best one case per line
"""msfkit.store.format: every malformed store file msfkit reads is one `Error:` line naming the file, a non-zero
exit, and nothing else changed: real folders, damaged on purpose, read by the installed command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.damage import edit_json, one_error_line, snapshot, store_and_index

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


def _short_meta(store: Path) -> None:
    path = store / "meta" / "00000.parquet"
    pq.write_table(pq.read_table(path).slice(0, 10), path)


STORE_DAMAGE = {
    "manifest is a list": (lambda s: (s / "manifest.json").write_text("[1, 2]"), "a JSON object, not list"),
    "manifest without model": (lambda s: edit_json(s / "manifest.json", lambda m: {**m, "model": None}),
                               "field 'model' must be a dict"),
    "format of a newer msfkit": (lambda s: edit_json(s / "manifest.json", lambda m: {**m, "format_version": 99}),
                                 "store format_version 99; this msfkit reads (1, 2); upgrade msfkit to read it"),
    "dim is text": (lambda s: edit_json(s / "manifest.json", lambda m: {**m, "dim": "abc"}), "field 'dim' must be a int"),
    "meta is garbage": (lambda s: (s / "meta" / "00000.parquet").write_bytes(b"PAR1 not really"),
                        "shard 00000 is missing or damaged"),
    "meta shorter than vectors": (_short_meta, "meta/00000.parquet has 10 rows, the manifest says 120"),
    "shard name outside": (lambda s: edit_json(s / "manifest.json", lambda m: {**m, "shards": [{"name": "../x", "rows": 1}]}),
                           "a shard entry needs a digit name"),
}  # fmt: skip


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return store_and_index(tmp_path_factory.mktemp("malformed"))


@pytest.mark.parametrize("damage", sorted(STORE_DAMAGE))
@pytest.mark.slow
def test_a_damaged_store_is_one_line_and_builds_nothing(folders, tmp_path, damage):
    store = tmp_path / "store"
    shutil.copytree(folders / "store", store)
    change, message = STORE_DAMAGE[damage]
    change(store)
    before = snapshot(store)
    r = subprocess.run([MSFKIT, "index", store, "-o", tmp_path / "ix"], capture_output=True, text=True)
    one_error_line(r, str(store), message)
    assert not (tmp_path / "ix").exists() and snapshot(store) == before
