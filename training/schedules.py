"""The per-step schedules of a run: the learning rate (cosine, per epoch or per step, with an optional
linear warm-up) and the target's EMA momentum, precomputed for every step."""

from __future__ import annotations

import numpy as np

from msfkit.training.config import TrainConfig
from msfkit.training.ema import ema_momentum


def schedules(cfg: TrainConfig, steps_per_epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(lr, EMA momentum) for every step of the run."""
    total = cfg.epochs * steps_per_epoch
    steps = np.arange(total)
    warmup = cfg.warmup_epochs * steps_per_epoch
    if cfg.lr_schedule == "epoch":  # the reference: 0.5 (1 + cos(pi (epoch - 1) / epochs)), epoch from 1
        progress = (steps // steps_per_epoch - cfg.warmup_epochs) / max(cfg.epochs - cfg.warmup_epochs, 1)
    else:
        progress = (steps - warmup) / max(total - warmup, 1)
    lr = cfg.lr * 0.5 * (1 + np.cos(np.pi * np.clip(progress, 0, 1)))
    if warmup:
        lr = np.where(steps < warmup, cfg.lr * (steps + 1) / warmup, lr)
    m = np.array([ema_momentum(cfg.ema, s, total, cfg.ema_schedule) for s in steps])
    return lr, m
