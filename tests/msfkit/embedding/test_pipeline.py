"""The one feature path: the same image gives the same vector through every entry point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import msfkit
from msfkit.data.datasets import FileImageDataset
from msfkit.embedding import EmbedOptions, embed_items
from msfkit.eval.features import extract_features
from msfkit.models import Encoder, EncoderConfig

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
