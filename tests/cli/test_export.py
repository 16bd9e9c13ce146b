# ruff: noqa: E501 - command lines read best unbroken
"""`msfkit export`: a model as ONNX and TorchScript that give the PyTorch model's vectors on real photos
(any batch size); formats it cannot write refused in one line; a user's folder never overwritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import msfkit
from msfkit.models import Encoder, EncoderConfig

MSFKIT = str(Path(sys.executable).with_name("msfkit"))
AGREE = 1e-4


def run(*args):
    return subprocess.run([MSFKIT, *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def model_and_pixels(tmp_path_factory, photo_paths):
    folder = tmp_path_factory.mktemp("export") / "model"
    torch.manual_seed(4)
    Encoder(EncoderConfig(arch="resnet18", image_size=64, resize=73)).save_pretrained(folder)
    encoder = msfkit.load(folder)
    images = [Image.open(p) for p in photo_paths[:5]]
    pixels = torch.stack([encoder.preprocess(im) for im in images]).numpy()  # what the sidecar describes
    return folder, encoder, pixels, encoder.embed(images)


def test_torchscript_gives_the_models_vectors_for_any_batch(model_and_pixels, tmp_path):
    folder, _, pixels, expected = model_and_pixels
    r = run("export", folder, tmp_path / "enc.pt", "--json")
    assert r.returncode == 0, r.stderr
    graph = torch.jit.load(str(tmp_path / "enc.pt"))
    for batch in (pixels[:1], pixels):
        got = graph(torch.from_numpy(batch)).numpy()
        assert np.abs(got - expected[: len(batch)]).max() <= AGREE
    sidecar = json.loads((tmp_path / "enc.pt.json").read_text())
    assert sidecar["preprocessing"]["resize"] == 73 and sidecar["output"]["shape"] == ["batch", 512]
    assert sidecar["model"]["fingerprint"] == msfkit.load(folder).fingerprint


def test_onnx_gives_the_models_vectors_for_any_batch(model_and_pixels, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the optional `onnx` extra")
    folder, _, pixels, expected = model_and_pixels
    r = run("export", folder, tmp_path / "enc.onnx")
    assert r.returncode == 0 and r.stdout.startswith("onnx -> "), r.stderr
    session = ort.InferenceSession(str(tmp_path / "enc.onnx"), providers=["CPUExecutionProvider"])
    for batch in (pixels[:1], pixels):
        (got,) = session.run(None, {"pixels": batch})
        assert np.abs(got - expected[: len(batch)]).max() <= AGREE
    assert json.loads((tmp_path / "enc.onnx.json").read_text())["input"]["name"] == "pixels"


@pytest.mark.parametrize("name", ["x.tflite", "x.safetensors", "weights.pth"])
def test_a_format_it_cannot_write_is_one_line_and_makes_nothing(model_and_pixels, tmp_path, name):
    folder = model_and_pixels[0]
    r = run("export", folder, tmp_path / name)
    assert r.returncode == 1 and "msfkit does not write this format" in r.stderr
    assert not (tmp_path / name).exists()


def test_a_checkpoint_into_a_folder_that_is_not_a_model_folder_is_refused(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    r = run("export", tmp_path / "r18.pth", mine)
    assert r.returncode == 1 and "is not a model folder" in r.stderr and "Traceback" not in r.stderr
    assert (mine / "README.md").read_text() == "my notes" and sorted(p.name for p in mine.iterdir()) == ["README.md"]
    deploy = run("export", tmp_path / "r18.pth", tmp_path / "x.onnx")
    assert deploy.returncode == 1 and "make it a model folder first" in deploy.stderr
