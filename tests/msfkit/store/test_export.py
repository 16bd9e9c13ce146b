# ruff: noqa: E501 - exact command lines and messages read best unbroken
"""msfkit.store.export and the store's files as other tools read them (numpy, pandas, pyarrow)."""

from __future__ import annotations

import csv
import glob
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import msfkit
from msfkit.models.errors import MsfkitError

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


@pytest.fixture(scope="module")
def store(tmp_path_factory, photo_paths, tiny_model_dir):
    root = tmp_path_factory.mktemp("export")
    for i, p in enumerate(photo_paths[:9]):  # two class folders and a loose file, 3 shards of 4
        folder = root / "photos" / ("a" if i < 4 else "b" if i < 8 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / p.name).write_bytes(p.read_bytes())
    return msfkit.embed(root / "photos", tiny_model_dir, root / "store", workers=0, shard_rows=4)


@pytest.mark.slow
def test_emb_npy_files_in_glob_order_are_the_store_in_store_order(store):
    """docs/formats.md: STORE/emb/*.npy is an embeddings folder numpy (and autofaiss) read directly."""
    root = store.parts[0].root
    files = sorted(glob.glob(str(root / "emb" / "*.npy")))
    assert len(files) == 3
    np.testing.assert_array_equal(np.concatenate([np.load(f) for f in files]), store.vectors)
    meta = pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(str(root / "meta" / "*.parquet")))])
    assert list(meta["path"]) == list(store.meta["path"])


@pytest.mark.slow
def test_parquet_csv_and_npy_hold_the_same_rows(store, tmp_path):
    table = pq.read_table(store.export(tmp_path / "e.parquet"))
    assert table.column_names == ["path", "label", "width", "height", "bytes", "mtime", "mtime_ns", "vector"]
    np.testing.assert_array_equal(np.stack(table["vector"].to_numpy(zero_copy_only=False)), store.vectors)
    assert table["path"].to_pylist() == list(store.meta["path"])
    assert table["label"].to_pylist() == [*["a"] * 4, *["b"] * 4, None]

    with open(store.export(tmp_path / "e.csv"), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "filenames" and rows[0][-1] == "labels" and len(rows[0]) == store.dim + 2
    assert [r[0] for r in rows[1:]] == list(store.meta["path"]) and rows[-1][-1] == ""
    np.testing.assert_allclose(np.array([r[1:-1] for r in rows[1:]], dtype=np.float32), store.vectors)

    np.testing.assert_array_equal(np.load(store.export(tmp_path / "v.npy")), store.vectors)


@pytest.mark.slow
def test_the_command_refuses_a_format_it_cannot_write_in_one_line(store, tmp_path):
    root = store.parts[0].root
    ok = subprocess.run(
        [MSFKIT, "store", "export", root, tmp_path / "x.parquet"], capture_output=True, text=True
    )
    assert ok.returncode == 0 and ok.stdout.strip().endswith(f"9 x {store.dim} -> {tmp_path / 'x.parquet'}")
    r = subprocess.run([MSFKIT, "store", "export", root, tmp_path / "x.xlsx"], capture_output=True, text=True)
    assert (
        r.returncode == 1
        and r.stderr.strip() == f"Error: {tmp_path / 'x.xlsx'}: cannot write .xlsx; use .parquet, .csv, .npy"
    )
    assert not (tmp_path / "x.xlsx").exists()
    (tmp_path / "folder.npy").mkdir()
    with pytest.raises(MsfkitError, match="is a folder"):
        store.export(tmp_path / "folder.npy")
