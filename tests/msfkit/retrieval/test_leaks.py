"""msfkit.retrieval.leaks finds exactly the TEST images planted (as copies) in TRAIN, from stores and
indexes alike, and refuses vectors of two models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import msfkit
from msfkit.index import build_index
from msfkit.models.errors import MsfkitError
from msfkit.retrieval.leaks import COLUMNS, find_leaks
from tests.msfkit.index_stores import clustered_vectors, write_vector_store
from tests.runs import embed

LEAKED = [3, 17, 42, 64, 88]  # TEST rows with a copy planted in TRAIN


def planted_splits(root: Path, model: dict | None = None) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """(train store, test store, train vectors, test vectors): 300 distinct TRAIN images and, after
    them, near copies (cosine ~0.99) of the LEAKED TEST images; 100 TEST images of other clusters.
    `model` the TEST store's model record (the TRAIN store's is the default)."""
    rng = np.random.default_rng(1)
    test = clustered_vectors(100, 32, clusters=10, seed=2)
    copies = test[LEAKED] + 0.1 * rng.standard_normal((len(LEAKED), 32)).astype(np.float32) / np.sqrt(32)
    train = np.concatenate([clustered_vectors(300, 32, clusters=10, seed=1), copies])
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    a = write_vector_store(root / "train", train, prefix="train", shard_rows=128)
    b = write_vector_store(root / "test", test, model=model, prefix="test", shard_rows=64)
    return a, b, train, test


def test_the_planted_copies_are_exactly_the_leaks_from_stores_and_indexes(tmp_path):
    train, test, x, y = planted_splits(tmp_path)
    found = find_leaks(train, test, threshold=0.95)
    t = found.table
    assert tuple(t.columns) == COLUMNS and found.threshold == 0.95 and found.calibration is None
    assert t["row"].tolist() == LEAKED and t["match_row"].tolist() == list(range(300, 305))
    assert [Path(p).name for p in t["path"]] == [f"test_{r:05d}.jpg" for r in LEAKED]
    assert [Path(p).name for p in t["match"]] == [f"train_{r:05d}.jpg" for r in range(300, 305)]
    np.testing.assert_allclose(t["score"], np.sum(y[LEAKED] * x[300:], axis=1), atol=1e-5)
    assert (y @ np.delete(x, range(300, 305), axis=0).T).max() < 0.95  # nothing else is near

    build_index(train, tmp_path / "train-index", kind="hnsw", recall=0.95)
    build_index(test, tmp_path / "test-index", kind="flat", recall=1.0)
    for a, b in ((tmp_path / "train-index", test), (train, tmp_path / "test-index")):
        assert find_leaks(a, b, threshold=0.95).table.drop(columns="score").equals(t.drop(columns="score"))
    looser = msfkit.find_leaks(train, test, threshold=0.8).table  # the public API; a lower bar finds more
    assert set(LEAKED) <= set(looser["row"]) and len(looser) > len(LEAKED)
    assert find_leaks(train, test, threshold=0.9999).table.empty


def test_vectors_of_another_model_are_refused_in_one_line(tmp_path):
    train, test, _, _ = planted_splits(tmp_path, model={"name": "other", "fingerprint": "f00"})
    with pytest.raises(MsfkitError) as e:
        find_leaks(train, test)
    assert str(e.value) == (
        f"TRAIN {train} and TEST {test} come from different models: fingerprint synthetic and "
        "other (fingerprint f00); embed both with one model"
    )


@pytest.mark.slow
def test_a_calibrated_threshold_finds_copies_of_real_photos(photo_index, photo_paths, tmp_path):
    index, _, _, model = photo_index  # TRAIN: 12 photos (and copies of 3 of them)
    photos = tmp_path / "test"
    photos.mkdir()
    for p in photo_paths[12:15]:  # photos TRAIN does not hold
        shutil.copy(p, photos / p.name)
    for p, how in ((photo_paths[5], "q40"), (photo_paths[7], "half")):  # copies of TRAIN's photos
        im = Image.open(p).convert("RGB")
        if how == "half":
            im = im.resize((im.width // 2, im.height // 2))
        im.save(photos / f"{p.stem}_{how}.jpg", quality=40 if how == "q40" else 95)
    embed([photos], str(model), tmp_path / "store", draft=True)
    found = find_leaks(index, tmp_path / "store", threshold="auto")
    assert found.calibration is not None and found.threshold == found.calibration.threshold
    pairs = {
        (Path(p).name, Path(m).name) for p, m in zip(found.table["path"], found.table["match"], strict=True)
    }
    copies = [(f"{photo_paths[5].stem}_q40.jpg", photo_paths[5].name)]
    copies.append((f"{photo_paths[7].stem}_half.jpg", photo_paths[7].name))
    assert pairs == set(copies)
