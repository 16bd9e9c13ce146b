"""The one feature path: the same image gives the same vector through every entry point."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import msfkit
from msfkit.cli.main import cli
from msfkit.data.datasets import FileImageDataset
from msfkit.embedding import EmbedOptions, embed_items
from msfkit.embedding.forward import COMPILE_MIN_BATCHES
from msfkit.embedding.pipeline import Embedder
from msfkit.eval.features import extract_features
from msfkit.models import Encoder, EncoderConfig
from msfkit.models.runtime import cpu_has_fast_bf16
from msfkit.store.format import read_manifest
from tests.msfkit.index_stores import calibrated_model

SAME = 1e-6


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A real ResNet18 at 64 px with a real resize (73 -> crop 64), so preprocessing matters."""
    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("model64")
    Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=64, resize=73)).save_pretrained(d)
    return d


@pytest.fixture
def photos(tmp_path, photo_paths) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for p in photo_paths[:6]:
        shutil.copy(p, d / p.name)
    return d


def _console_script() -> str:
    return str(Path(sys.executable).with_name("msfkit"))


@pytest.mark.slow
def test_cli_python_api_encoder_and_eval_features_agree(tmp_path, photos, model_dir):
    files = sorted(photos.glob("*.jpg"))
    encoder = msfkit.load(model_dir)

    cli_store = tmp_path / "cli-store"
    subprocess.run(
        [_console_script(), "embed", str(photos), "-m", str(model_dir), "-o", str(cli_store), "-q"],
        check=True, env={**os.environ, "MSFKIT_MODEL": ""}, capture_output=True,
    )  # fmt: skip
    from_cli = msfkit.open_store(cli_store).vectors

    api = msfkit.embed(photos, encoder, tmp_path / "api-store", workers=0)
    from_encoder = encoder.embed([Image.open(p) for p in files])
    from_eval, _ = extract_features(encoder, FileImageDataset(files), batch_size=4)
    from_items, bad = embed_items(encoder, [str(p) for p in files], EmbedOptions(batch_size=3, workers=2))

    assert list(api.meta["path"]) == [p.name for p in files] and not bad
    for name, vectors in {"api": api.vectors, "Encoder.embed": from_encoder, "eval": from_eval,
                          "workers": from_items}.items():  # fmt: skip
        assert vectors.shape == from_cli.shape
        assert np.abs(vectors - from_cli).max() <= SAME, name


@pytest.mark.slow
def test_draft_decoding_is_an_option_that_changes_the_vectors(tmp_path, photos, model_dir):
    """Draft decoding (opt-in) really differs on these photos, so the agreement above is not vacuous."""
    encoder = msfkit.load(model_dir)
    exact = msfkit.embed(photos, encoder, tmp_path / "exact", workers=0).vectors
    draft = msfkit.embed(photos, encoder, tmp_path / "draft", workers=0, draft=True).vectors
    assert np.abs(draft - exact).max() > 1e-3
    assert (draft * exact).sum(1).min() > 0.95


@pytest.mark.slow
def test_notebook_inputs_embed_alike_and_a_wrong_type_is_one_error(photo_paths, model_dir):
    encoder = msfkit.load(model_dir)
    image = Image.open(photo_paths[0])
    one = encoder.embed(image)
    assert one.shape == (1, 512)
    assert np.abs(encoder.embed(np.asarray(image.convert("RGB"))) - one).max() <= SAME
    assert np.abs(encoder.embed([image, image])[1] - one[0]).max() <= SAME
    with pytest.raises(msfkit.models.MsfkitError, match="cannot embed a dict"):
        encoder.embed({"image": image})


# -- the packaged CPU path (bf16 here; fp32 in test_forward.py) and the choice of precision ------------


@pytest.fixture(scope="module")
def packaged_store(tmp_path_factory, photo_paths):
    """(photos, a ResNet18 folder whose batch norms saw them, the store embedded in bf16 through its
    AOTInductor package in batches of 8: 8, 8 and a short 4, the package cache, what the run said on
    stderr). The module's one build."""
    if not cpu_has_fast_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 or AMX): a bf16 package takes minutes here")
    photos = tmp_path_factory.mktemp("packaged") / "photos"
    photos.mkdir()
    for p in photo_paths[:20]:
        shutil.copy(p, photos / p.name)
    model = calibrated_model(photo_paths, photos.parent / "model")
    out, cache, said = photos.parent / "store", photos.parent / "cache", io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(said):
        mp.setenv("MSFKIT_CACHE", str(cache))
        msfkit.embed(photos, model, out, workers=0, batch_size=8, precision="bf16", compiled=True)
    return photos, model, out, cache, said.getvalue()


@pytest.mark.slow
def test_a_store_embedded_through_the_package_equals_one_embedded_eagerly(packaged_store, tmp_path):
    photos, model, store, cache, said = packaged_store
    assert "failed" not in said and len(list((cache / "aoti").glob("*.pt2"))) == 1  # built, run packaged
    opts = {"workers": 0, "batch_size": 8, "precision": "bf16", "compiled": False}
    eager = msfkit.embed(photos, model, tmp_path / "eager", **opts)
    packaged = msfkit.open_store(store)
    assert list(packaged.meta["path"]) == list(eager.meta["path"]) and len(eager) == 20
    assert (packaged.vectors * eager.vectors).sum(1).min() >= 0.999
    assert np.abs(eager.vectors @ eager.vectors.T - np.eye(20)).max() > 0.01  # distinct photos: it has teeth


def test_a_job_compiles_from_compile_min_batches_batches_unless_told(tiny_model_dir):
    encoder = msfkit.load(tiny_model_dir)
    opts = EmbedOptions(batch_size=32)
    assert Embedder(encoder, opts, items=32 * COMPILE_MIN_BATCHES).compiled
    assert not Embedder(encoder, opts, items=32 * COMPILE_MIN_BATCHES - 32).compiled
    assert not Embedder(encoder, EmbedOptions(batch_size=32, compiled=False), items=10**6).compiled
    assert Embedder(encoder, EmbedOptions(compiled=True), items=1).compiled
    encoder.train()  # a model being trained (the k-NN monitor's) changes before its next job
    assert not Embedder(encoder, opts, items=32 * COMPILE_MIN_BATCHES).compiled
    assert Embedder(encoder, EmbedOptions(batch_size=32, compiled=True), items=1).compiled


def test_auto_precision_is_resolved_once_when_the_options_are_made():
    native = "bf16" if cpu_has_fast_bf16() else "fp32"
    opts = EmbedOptions(precision="auto", device="cpu")
    assert opts.precision == native
    assert dataclasses.replace(opts, device=torch.device("cuda")).precision == native  # resolved already
    assert EmbedOptions(precision="auto", device=torch.device("cuda")).precision == "bf16"
    assert EmbedOptions(precision="fp32", device=torch.device("cuda")).precision == "fp32"
    with pytest.raises(msfkit.models.MsfkitError, match="precision must be one of auto, fp32, bf16"):
        EmbedOptions(precision="fp16")


@pytest.mark.slow
def test_a_store_records_the_precision_auto_resolved_to(tmp_path, photos, tiny_model_dir):
    args = ["embed", str(photos), "-m", str(tiny_model_dir), "-o", str(tmp_path / "store"), "-q"]
    result = CliRunner().invoke(cli, [*args, "--precision", "auto", "--device", "cpu", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert read_manifest(tmp_path / "store").settings.precision == ("bf16" if cpu_has_fast_bf16() else "fp32")
