"""msfkit.index.folder: a malformed index.json or rows.parquet is one `Error:` line naming the file,
a non-zero exit, and nothing changed (read by the installed command)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.damage import edit_json, one_error_line, snapshot, store_and_index

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return store_and_index(tmp_path_factory.mktemp("malformed"))


INDEX_DAMAGE = {
    "index.json is a list": (lambda i: (i / "index.json").write_text("[]"), "format_version None"),
    "no search_params": (
        lambda i: edit_json(i / "index.json", lambda m: {k: v for k, v in m.items() if k != "search_params"}),
        "field 'search_params' must be a dict",
    ),
    "no sources": (
        lambda i: edit_json(i / "index.json", lambda m: {k: v for k, v in m.items() if k != "sources"}),
        "field 'sources' must be a list",
    ),
    "storage unknown": (
        lambda i: edit_json(i / "index.json", lambda m: {**m, "storage": "tape"}),
        "field 'storage' must be one of memory, disk, not 'tape'",
    ),
    "storage on disk without its lists": (
        lambda i: edit_json(i / "index.json", lambda m: {**m, "storage": "disk"}),
        "an index stored on disk, but index.ivfdata is missing",
    ),
    "rows point outside": (
        lambda i: pq.write_table(
            pq.read_table(i / "rows.parquet").set_column(0, "source", pa.array(np.full(120, 5, np.int32))),
            i / "rows.parquet",
        ),
        "rows point outside",
    ),
}


@pytest.mark.parametrize("damage", sorted(INDEX_DAMAGE))
@pytest.mark.slow
def test_a_damaged_index_is_one_line(folders, tmp_path, damage):
    index = tmp_path / "index"
    shutil.copytree(folders / "index", index)
    change, message = INDEX_DAMAGE[damage]
    change(index)
    if damage == "rows point outside":  # keep index.json's record of the file's size true
        edit_json(
            index / "index.json",
            lambda m: {**m, "files": {**m["files"], "rows.parquet": (index / "rows.parquet").stat().st_size}},
        )
    before = snapshot(index)
    r = subprocess.run([MSFKIT, "search", index, f"{folders / 'store'}:0"], capture_output=True, text=True)
    one_error_line(r, str(index), message)
    assert snapshot(index) == before
