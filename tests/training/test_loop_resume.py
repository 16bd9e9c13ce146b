"""Resume: a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from msfkit.cli.main import cli
from msfkit.training.checkpoint import load_checkpoint

# 12 real Fashion-MNIST images in batches of 4: 3 steps per epoch, so a resume at step 2 is
# mid-epoch and step 4 crosses an epoch (new permutation, new lr); a 10-row bank wraps mid-batch.
RUN = [
    "data=fashion-mnist", "limit=12", "arch=resnet18", "stem=cifar", "image_size=32", "batch_size=4",
    "epochs=4", "k=2", "bank_size=10", "workers=0", "threads=1", "precision=fp32", "knn_every=0",
    "log_every=1",
]  # fmt: skip


def _kill_at_first_checkpoint(out) -> int:
    cmd = [sys.executable, "-m", "msfkit.cli", "train", *RUN, f"out={out}", "save_every_steps=2", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return load_checkpoint(ckpt)["step"]


@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    saved = _kill_at_first_checkpoint(killed)
    assert saved % 2 == 0 and saved < 12
    stop = f"max_steps={saved + 2}"
    runner = CliRunner()
    r = runner.invoke(cli, ["train", "--resume", f"out={killed}", stop, "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["train", *RUN, f"out={straight}", stop, "-q"])
    assert r.exit_code == 0, r.output

    a, b = load_checkpoint(killed / "checkpoint.pt"), load_checkpoint(straight / "checkpoint.pt")
    assert a["step"] == b["step"] == saved + 2
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:  # online, predictor, target and bank (vectors, labels, ptr)
        assert torch.equal(a["model"][key], b["model"][key]), key
    for i, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
    with (killed / "metrics.csv").open() as f:
        steps = [int(row["step"]) for row in csv.DictReader(f)]
    assert steps == list(range(1, saved + 3))  # rows the killed run logged after its checkpoint are dropped
    assert (killed / "model" / "model.safetensors").is_file()
