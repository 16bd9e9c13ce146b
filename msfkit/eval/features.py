"""Frozen-encoder features of a labelled dataset, for the evaluation protocols and the training monitor.

ds = ArrayImageDataset(images, labels, transform=encoder.transform())   # centre-crop preprocessing
feats, labels = extract_features(encoder, ds, batch_size=256)          # (N, D) float32, L2-normalised
"""

from __future__ import annotations

import numpy as np
import torch

from msfkit.models.encoder import PRECISIONS
from msfkit.models.errors import MsfkitError


@torch.no_grad()
def extract_features(
    encoder,
    dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    workers: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 (N, D) L2-normalised, labels (N,)) of a map-style dataset of (tensor, label).

    The encoder runs in eval mode (BatchNorm running statistics) and is put back in the mode it
    was in. Rows come out in dataset order. `progress` draws a bar on stderr.
    """
    if precision not in PRECISIONS:
        raise MsfkitError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    device = torch.device(device)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    was_training = encoder.training
    encoder.eval().to(device)
    feats, labels = [], []
    try:
        for x, y in tqdm(loader, desc="features", unit="batch", disable=not progress, leave=False):
            feats.append(encoder.embed_batch(x.to(device, non_blocking=True), precision).cpu())
            labels.append(torch.as_tensor(y))
    finally:
        encoder.train(was_training)
    if not feats:
        return np.zeros((0, encoder.embedding_dim), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()
