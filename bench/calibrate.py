"""Randomly initialised encoders whose batch-norm statistics are those of the data: the stand-in
for a trained model where none exists offline (features of an uncalibrated random ResNet are nearly
all alike). Used by bench/search.py, bench/precision.py and bench/curate.py."""

from __future__ import annotations

import torch

from msfkit.models import Encoder


def calibrate_batch_norm(encoder: Encoder, x: torch.Tensor, chunk: int = 500) -> Encoder:
    """`encoder` with every batch norm's running statistics replaced by those of the batch `x`
    (normalised pixels, passed in chunks of `chunk`: a cumulative average over one pass); in eval mode."""
    for m in encoder.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the one pass
    encoder.train()
    with torch.no_grad():
        for part in x.split(chunk):
            encoder(part)
    return encoder.eval()
