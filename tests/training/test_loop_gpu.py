"""On a GPU: bf16 autocast + channels_last steps train, checkpoint and export like the CPU path."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import msfkit
from msfkit.cli.main import cli
from msfkit.training.checkpoint import load_checkpoint

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_bf16_channels_last_steps_on_cuda(tmp_path, photos_dir):
    run = tmp_path / "run"
    args = [
        "train", f"data={photos_dir}", f"out={run}", "arch=resnet18", "stem=cifar", "image_size=32",
        "batch_size=4", "k=2", "bank_size=6", "epochs=2", "workers=0", "device=cuda", "precision=auto",
        "knn_every=0", "-q",
    ]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["step"] == 4 and ckpt["model"]["bank.vectors"].dtype == torch.float32
    assert torch.isfinite(ckpt["model"]["online.backbone.conv1.weight"]).all()
    assert msfkit.load(str(run / "model")).config.provenance["steps"] == 4
