"""Non-finite numbers never pass silently: a broken model, a damaged store, a NaN learning rate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from msfkit.eval.inputs import load_inputs
from msfkit.eval.run import evaluate
from msfkit.index import build_index
from msfkit.models import Encoder, EncoderConfig
from msfkit.models.errors import MsfkitError
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


@pytest.mark.slow
def test_a_model_with_nan_weights_writes_no_vector_and_exits_1(tmp_path, photos_dir):
    enc = Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32))
    with torch.no_grad():
        next(enc.backbone.parameters()).fill_(float("nan"))
    enc.save_pretrained(tmp_path / "nan-model")
    args = [MSFKIT, "embed", photos_dir, "-m", tmp_path / "nan-model", "-o", tmp_path / "s", "-q"]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 1 and "non-finite vectors (NaN or inf) for 8 of 8 images" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("s/emb/*.npy")) and not list(tmp_path.glob("s/meta/*.parquet"))


def _labelled_store(root: Path, vectors: np.ndarray, nan_row: int | None = None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = write_vector_store(root, vectors)
    for path in sorted((store / "meta").glob("*.parquet")):  # every row a label, as class folders give
        table = pq.read_table(path)
        labels = pa.array([f"c{i % 2}" for i in range(table.num_rows)])
        pq.write_table(table.set_column(1, "label", labels), path)
    if nan_row is not None:  # damaged on disk after it was written
        shard = store / "emb" / "00000.npy"
        x = np.load(shard)
        x[nan_row] = np.nan
        np.save(shard, x)
    return store


def test_a_nan_row_in_a_store_is_named_by_index_and_eval(tmp_path):
    store = _labelled_store(tmp_path / "train", clustered_vectors(40, 8, 2, seed=0), nan_row=7)
    val = _labelled_store(tmp_path / "val", clustered_vectors(10, 8, 2, seed=1))
    with pytest.raises(MsfkitError, match="rows 7 hold non-finite values"):
        build_index(store, tmp_path / "ix", kind="flat")
    with pytest.raises(MsfkitError, match="--train .*: rows 7 hold non-finite values"):
        load_inputs(train=store, val=val)


def test_a_nan_learning_rate_is_refused_before_training(tmp_path):
    train = _labelled_store(tmp_path / "train", clustered_vectors(40, 8, 2, seed=0))
    val = _labelled_store(tmp_path / "val", clustered_vectors(10, 8, 2, seed=1))
    inputs, _ = load_inputs(train=train, val=val)
    with pytest.raises(MsfkitError, match="--lr nan: a learning rate is a positive finite number"):
        evaluate(inputs, linear_preset="fast", lrs=[float("nan")], head_out=tmp_path / "head")
    assert not (tmp_path / "head").exists()
