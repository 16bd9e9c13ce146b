"""The target network's exponential moving average (docs/method.md, step 1), over parameters only.

theta_t <- m theta_t + (1 - m) theta_q for every parameter. BatchNorm running statistics are
buffers and are NOT averaged: the target keeps the statistics of its own forward passes.
The momentum is constant (reference code, m = 0.99) or follows BYOL's cosine from m to 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place: every target parameter moves to m * itself + (1 - m) * its online twin."""
    t_params = list(target.parameters())
    o_params = [p.detach() for p in online.parameters()]
    # lerp(t, o, w) = t + w (o - t) = (1 - w) t + w o, with w = 1 - m
    torch._foreach_lerp_(t_params, o_params, 1.0 - momentum)


def ema_momentum(base: float, step: int, total_steps: int, schedule: str) -> float:
    """m at `step`: `base` throughout ("constant"), or 1 - (1 - base)(cos(pi step / total) + 1) / 2."""
    if schedule == "constant":
        return base
    return 1.0 - (1.0 - base) * (math.cos(math.pi * step / max(total_steps, 1)) + 1.0) / 2.0
