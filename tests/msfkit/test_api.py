"""The public API (`msfkit/__init__.py`): cheap to import, the objects a notebook user gets back,
one clear error for what it cannot take."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import msfkit
from msfkit.models.errors import MsfkitError
from msfkit.retrieval import Index
from msfkit.store import Store


def test_import_msfkit_loads_neither_torch_nor_faiss():
    code = "import sys, msfkit; print(sorted(m for m in ('torch', 'faiss', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_embed_build_index_search_and_dedup_return_rich_objects(tmp_path, photos_dir, tiny_model_dir):
    store = msfkit.embed(photos_dir, tiny_model_dir, tmp_path / "store", workers=0)
    assert isinstance(store, Store) and len(store) == 8
    assert store.run.embedded == 8 and store.run.failed == 0
    again = msfkit.embed([photos_dir], str(tiny_model_dir), tmp_path / "store", workers=0)
    assert again.run.skipped == 8 and again.run.embedded == 0  # a rerun continues, nothing redone

    index = msfkit.build_index(store, tmp_path / "index")
    assert isinstance(index, Index) and len(index) == 8
    reopened = msfkit.open_index(tmp_path / "index")
    by_row = reopened.search(f"{tmp_path / 'store'}:3", k=2)
    by_vector = reopened.search(store.vectors[3:4], k=2)
    assert list(by_row["row"]) == list(by_vector["row"]) and by_row["row"][0] == 3
    assert set(index.dedup(threshold=0.999).columns) >= {"group", "path", "score"}
    for given in (tmp_path / "store", str(tmp_path / "store"), [tmp_path / "store"]):  # a Path has .parts too
        assert len(msfkit.build_index(given, tmp_path / "ix", force=True)) == 8


def test_wrong_types_and_options_are_one_clear_error(tmp_path, photos_dir, tiny_model_dir):
    store = msfkit.embed(photos_dir, tiny_model_dir, tmp_path / "store", workers=0)
    index = msfkit.build_index(store, tmp_path / "index")
    with pytest.raises(MsfkitError, match="cannot search with a dict"):
        index.search({"q": 1})
    with pytest.raises(MsfkitError, match="query 0: a int is not an image"):
        index.search([3])
    with pytest.raises(TypeError, match="unexpected options: colour"):
        msfkit.embed(photos_dir, tiny_model_dir, tmp_path / "s2", colour=True)
    with pytest.raises(MsfkitError, match="precision must be one of auto, fp32, bf16"):
        msfkit.embed(photos_dir, tiny_model_dir, tmp_path / "s3", precision="fp8")


@pytest.mark.slow
def test_datasets_export_writes_class_folders_evaluate_reads(tmp_path, tiny_model_dir):
    counts = msfkit.datasets.export("fashion-mnist", tmp_path / "fm", per_class=3)
    assert counts == {"train": 30, "test": 30}
    assert len(list((tmp_path / "fm" / "train" / "sandal").glob("*.png"))) == 3
    fm = tmp_path / "fm"
    report = msfkit.evaluate(tiny_model_dir, train=fm / "train", val=fm / "test", ks=(1,))
    (row,) = report["results"]
    assert row["protocol"] == "knn-msf" and row["n_train"] == 30 and 0 <= row["top1"] <= 100
    assert np.isfinite(row["top1"])
