# ruff: noqa: E501 - command lines read best unbroken
"""`msfkit export`: a model as ONNX and TorchScript that give the PyTorch model's vectors on real photos
(any batch size); formats it cannot write refused in one line; a user's folder never overwritten;
a checkpoint's config checked whole, sizes included, before anything is written."""

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
from tests.commands import in_process
from tests.training.run_checkpoints import write_run_checkpoint
from tests.training.test_export import reference_checkpoint

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.parametrize(
    ("name", "command"),  # installed, then the further cases through the click group in this process
    [("x.tflite", run), ("x.safetensors", in_process), ("weights.pth", in_process)],
    ids=["x.tflite", "x.safetensors", "weights.pth"],
)
@pytest.mark.slow
def test_a_format_it_cannot_write_is_one_line_and_makes_nothing(model_and_pixels, tmp_path, name, command):
    folder = model_and_pixels[0]
    r = command("export", folder, tmp_path / name)
    assert r.returncode == 1 and "msfkit does not write this format" in r.stderr
    assert not (tmp_path / name).exists()


@pytest.mark.slow
def test_a_checkpoint_into_a_folder_that_is_not_a_model_folder_is_refused(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    r = run("export", tmp_path / "r18.pth", mine)
    assert r.returncode == 1 and "already exists" in r.stderr and "Traceback" not in r.stderr
    r = in_process("export", tmp_path / "r18.pth", mine, "--force")
    assert r.returncode == 1 and "not a model folder" in r.stderr
    assert (mine / "README.md").read_text() == "my notes" and sorted(p.name for p in mine.iterdir()) == [
        "README.md"
    ]
    deploy = in_process("export", tmp_path / "r18.pth", tmp_path / "x.onnx")
    assert deploy.returncode == 1 and "make it a model folder first" in deploy.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["training run", "reference checkpoint"])
def test_an_image_size_the_config_refuses_is_one_line_and_writes_nothing(tmp_path, kind):
    if kind == "training run":
        source = write_run_checkpoint(tmp_path / "run").parent
    else:
        source = tmp_path / "ckpt.pth.tar"
        reference_checkpoint(source, "resnet18")
    for command, size in ((run, "0"), (in_process, "5000")):  # installed, then in this process
        r = command("export", source, tmp_path / "model", "--image-size", size)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith(
            f"Error: config: image_size must be a whole number of pixels in 8..4096, not {size}"
        )
        assert not (tmp_path / "model").exists()
    bad_resize = in_process("export", source, tmp_path / "model", "--image-size", "64", "--resize", "0")
    assert bad_resize.returncode == 1 and "config: resize must be" in bad_resize.stderr
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_both_kinds_of_checkpoint_take_the_one_default_resize(tmp_path):
    reference_checkpoint(tmp_path / "ckpt.pth.tar", "resnet18")
    runs = write_run_checkpoint(tmp_path / "run").parent
    for source in (tmp_path / "ckpt.pth.tar", runs):
        for size, resize in ((48, 48), (96, 110)):
            out = tmp_path / f"{source.name}-{size}"
            assert in_process("export", source, out, "--image-size", size).returncode == 0
            config = json.loads((out / "config.json").read_text())
            assert (config["image_size"], config["resize"]) == (size, resize)
