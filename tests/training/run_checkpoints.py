"""A real `msfkit train` checkpoint without training: the MSF module and SGD state a run saves,
written by the run's own `save_checkpoint` (seconds, not a training run)."""

from __future__ import annotations

from pathlib import Path

import torch

from msfkit.training.checkpoint import save_checkpoint
from msfkit.training.config import load_config
from msfkit.training.msf import MSF

RUN = ["data=fashion-mnist", "arch=resnet18", "stem=cifar", "batch_size=4", "k=2", "bank_size=8"]


def write_run_checkpoint(run: Path, image_size: int = 32) -> Path:
    """RUN/checkpoint.pt of a ResNet18 run on `image_size` px images, one step in; returns its path."""
    cfg = load_config(overrides=[*RUN, f"image_size={image_size}", f"out={run}"])
    torch.manual_seed(0)
    model = MSF(cfg.arch, cfg.stem, cfg.k, cfg.bank_size)
    optimizer = torch.optim.SGD([*model.online.parameters(), *model.predictor.parameters()], lr=cfg.lr)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": 1,
        "epoch": 1,
        "steps_per_epoch": 3,
        "config": cfg.to_dict(),
        "metrics": {},
    }
    save_checkpoint(run / "checkpoint.pt", state)
    return run / "checkpoint.pt"
