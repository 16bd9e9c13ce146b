"""msfkit.embedding.forward and .aoti: the packaged CPU path (fp32 here; bf16 in test_pipeline.py)
gives eager's vectors at one padded shape; a second Forward loads the package without building it;
other weights get another package; a truncated package runs the job eagerly after one line. One
build for the whole module, in a cache folder of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from msfkit.embedding.forward import Forward
from msfkit.models import Encoder, to_rgb
from tests.msfkit.index_stores import calibrated_model

BATCH = 8  # 20 photos: batches of 8, 8 and a short 4

pytestmark = pytest.mark.slow  # building a ResNet18's package takes seconds


@pytest.fixture(scope="module")
def encoder(photo_paths, tmp_path_factory) -> Encoder:
    """A ResNet18 at 32 px whose batch norms saw the photos: distinct photos give distinct vectors."""
    model = Encoder.from_pretrained(calibrated_model(photo_paths, tmp_path_factory.mktemp("model")))
    return model.eval().to(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def crops(encoder, photo_paths) -> torch.Tensor:
    """uint8 (20, 3, 32, 32) centre crops of real photos, as the decoding workers send them."""
    return torch.stack([encoder.preprocess.crop(to_rgb(Image.open(p))) for p in photo_paths[:20]])


@pytest.fixture(scope="module")
def packaged(encoder, crops, tmp_path_factory):
    """(the cache folder, the fp32 Forward that built its package there, its rows for the crops in
    one call: batches of 8, 8 and a padded 4, the package file, its mtime)."""
    cache = tmp_path_factory.mktemp("msfkit_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSFKIT_CACHE", str(cache))
        forward = Forward(encoder, "fp32", BATCH, compiled=True)
    (path,) = (cache / "aoti").iterdir()
    return cache, forward, forward(crops), path, path.stat().st_mtime_ns


def test_the_package_gives_eagers_vectors_for_a_padded_last_batch(packaged, encoder, crops):
    _, forward, rows, _, _ = packaged
    assert forward.compiled and forward.setup[0] == "built"  # it ran packaged, not through the fallback
    eager = Forward(encoder, "fp32", BATCH)(crops)
    assert rows.shape == eager.shape == (20, 512)
    np.testing.assert_allclose(rows, eager, atol=1e-5)
    assert np.abs(rows @ rows.T - np.eye(20)).max() > 0.01  # distinct photos: the check above has teeth
    np.testing.assert_allclose(forward(crops[:3]), rows[:3], atol=1e-6)


def test_a_second_forward_loads_the_package_without_building_it(packaged, encoder, crops, monkeypatch):
    cache, _, rows, path, mtime = packaged
    monkeypatch.setenv("MSFKIT_CACHE", str(cache))
    second = Forward(encoder, "fp32", BATCH, compiled=True)
    assert second.setup[0] == "loaded" and second.setup[1] < 5
    assert list((cache / "aoti").iterdir()) == [path] and path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(second(crops), rows)


def test_other_weights_precision_or_batch_size_get_another_package(packaged, encoder, monkeypatch):
    """The key hashes the weights: a model trained further in place (the k-NN monitor's) never loads
    the package of its weights before."""
    cache, _, _, path, _ = packaged
    monkeypatch.setenv("MSFKIT_CACHE", str(cache))
    assert Forward(encoder, "fp32", BATCH).package_path() == path
    assert Forward(encoder, "bf16", BATCH).package_path() != path
    assert Forward(encoder, "fp32", BATCH // 2).package_path() != path
    weight = next(encoder.parameters())
    before = weight.detach().clone()
    with torch.no_grad():
        weight[0, 0, 0, 0] += 1e-3
        try:
            assert Forward(encoder, "fp32", BATCH).package_path() != path
        finally:
            weight.copy_(before)
    assert Forward(encoder, "fp32", BATCH).package_path() == path
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # oneDNN held below the CPU: other kernels
    assert Forward(encoder, "fp32", BATCH).package_path() != path


def test_a_process_whose_torch_is_limited_to_another_isa_gets_another_package(tiny_model_dir):
    """ATEN_CPU_CAPABILITY is read once, when torch loads: a process of its own for each setting."""
    code = (
        "import sys, msfkit; from msfkit.embedding.forward import Forward\n"
        "print(Forward(msfkit.load(sys.argv[1]), 'fp32', 8).package_path().name)"
    )
    names = set()
    for isa in ({}, {"ATEN_CPU_CAPABILITY": "default"}):  # "default": no vector ISA at all
        env = {**os.environ, **isa}
        run = subprocess.run([sys.executable, "-c", code, str(tiny_model_dir)], env=env, capture_output=True)
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        names.add(run.stdout.strip())
    assert len(names) == 2


def test_a_truncated_package_runs_the_job_eagerly_after_one_line(
    packaged, encoder, crops, tmp_path, monkeypatch, capsys
):
    _, _, _, path, _ = packaged
    monkeypatch.setenv("MSFKIT_CACHE", str(tmp_path))
    broken = tmp_path / "aoti" / path.name
    broken.parent.mkdir()
    shutil.copy(path, broken)
    with broken.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    forward = Forward(encoder, "fp32", BATCH, compiled=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("msfkit: loading the model failed, running it eagerly (")
    assert not forward.compiled and not broken.exists()  # removed: the next job builds it again
    np.testing.assert_allclose(forward(crops), Forward(encoder, "fp32", BATCH)(crops), atol=1e-6)
