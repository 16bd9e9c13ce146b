"""`msfkit train init=MODEL`: both networks start from a model folder or a Hub model, the run
records which, and `--resume` continues from its checkpoint without loading MODEL again.

With ema=1 the target's parameters never move (lerp with weight 0), and with a vanishing lr the
online ones barely do: after two real steps both are still the weights the run started from.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import msfkit
from msfkit.cli.main import cli
from msfkit.training.checkpoint import load_checkpoint
from tests.commands import in_process

MSFKIT = str(Path(sys.executable).with_name("msfkit"))
# no arch or stem: they come from the model; 12 images in batches of 4 are 3 steps
RUN = [
    "data=fashion-mnist", "limit=12", "image_size=32", "batch_size=4", "epochs=1", "k=2", "bank_size=10",
    "workers=0", "threads=1", "precision=fp32", "knn_every=0", "ema=1", "lr=1e-30",
]  # fmt: skip


def _assert_started_from(ckpt: dict, encoder) -> None:
    for name, weight in encoder.backbone.named_parameters():
        assert torch.equal(ckpt["model"][f"target.backbone.{name}"], weight), name
        torch.testing.assert_close(ckpt["model"][f"online.backbone.{name}"], weight, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_a_run_starts_from_a_model_folder_records_it_and_resumes_without_it(tmp_path):
    base = tmp_path / "base"
    # the model folder, in this process: the runs below are the test
    made = in_process(
        "models", "init", "resnet18", base, "--stem", "cifar", "--image-size", "32", "--seed", "7"
    )
    assert made.returncode == 0, made.stderr
    run = tmp_path / "run"
    r = subprocess.run(
        [MSFKIT, "train", *RUN, f"init={base}", f"out={run}", "max_steps=2", "-q"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    said = "(the config said arch=resnet50 stem=imagenet)"
    expected = f"init={base}: arch=resnet18 stem=cifar taken from the model {said}"
    assert expected in r.stderr.splitlines()

    init = msfkit.load(str(base))
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert (ckpt["step"], ckpt["config"]["arch"], ckpt["config"]["stem"]) == (2, "resnet18", "cifar")
    _assert_started_from(ckpt, init)
    record = {"model": str(base), "fingerprint": init.fingerprint}
    assert ckpt["metrics"]["init"] == record
    assert msfkit.load(str(run / "model")).config.provenance["init"] == record

    shutil.rmtree(base)  # a resume continues from the checkpoint: MODEL is not needed, nor loaded
    r = in_process("train", "--resume", f"out={run}", "max_steps=0", "-q")  # a further case, in this process
    assert r.returncode == 0, r.stderr
    assert "resumed from step 2/3 (epoch 1/1)" in r.stderr.splitlines() and "init=" not in r.stderr
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 3
    assert msfkit.load(str(run / "model")).config.provenance["init"] == record


@pytest.mark.slow
def test_a_run_starts_from_a_hub_model_at_its_revision(tmp_path, local_hub, tiny_model_dir):
    local_hub.create_repo("org/base")
    sha = local_hub.commit("org/base", {p.name: p.read_bytes() for p in tiny_model_dir.iterdir()})
    run = tmp_path / "run"
    args = ["train", *RUN, "init=org/base", "arch=resnet34", f"out={run}", "max_steps=1", "-q"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert (
        "init=org/base: arch=resnet18 stem=cifar taken from the model (the config said arch=resnet34"
        in r.output
    )

    init = msfkit.load(str(tiny_model_dir))
    ckpt = load_checkpoint(run / "checkpoint.pt")
    _assert_started_from(ckpt, init)
    record = {"model": "org/base", "fingerprint": init.fingerprint, "revision": sha}
    assert msfkit.load(str(run / "model")).config.provenance["init"] == record


def test_an_init_model_that_cannot_be_found_is_one_line(tmp_path):
    r = CliRunner().invoke(
        cli, ["train", *RUN, f"init={tmp_path / 'nothing'}", f"out={tmp_path / 'run'}", "-q"]
    )
    assert r.exit_code == 1 and r.output.strip().splitlines() == [
        f"Error: model '{tmp_path / 'nothing'}': no such folder; expected a model folder, 'org/name' "
        "or 'org/name@revision' (a Hugging Face Hub repo)"
    ]
