"""Frozen-encoder features of a labelled dataset, for the evaluation protocols and the training monitor.

    ds = ArrayImageDataset(images, labels)                  # or FileImageDataset, image_folder(...)
    feats, labels = extract_features(encoder, ds)           # (N, D) float32, L2-normalised

The images go through the one feature path (`msfkit.embedding.pipeline`): the encoder's own
centre-crop preprocessing, exactly as `msfkit embed` and `Encoder.embed` run it.
"""

from __future__ import annotations

import numpy as np
import torch

from msfkit.embedding.pipeline import EmbedOptions, embed_items
from msfkit.models.errors import MsfkitError


def extract_features(
    encoder,
    dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    workers: int = 0,
    progress: bool = False,
    announce: object = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 (N, D) L2-normalised, labels (N,)) of a dataset with `image(i)` and `labels`.

    The encoder runs in eval mode (BatchNorm running statistics) and is put back in the mode it
    was in. Rows come out in dataset order; an image that cannot be read is an error naming it.
    `announce`: see `EmbedOptions.announce` (a `JobLine` to share one line between splits).
    """
    if getattr(dataset, "transform", None) is not None:
        raise MsfkitError(
            "extract_features applies the encoder's own preprocessing: give the dataset without a transform"
        )
    opts = EmbedOptions(
        batch_size=batch_size, workers=workers, precision=precision, device=device, progress=progress,
        announce=announce,
    )  # fmt: skip
    feats, bad = embed_items(encoder, dataset, opts)
    if not np.isfinite(feats).all():
        raise MsfkitError("the model gave non-finite features (NaN or inf); check its weights and config")
    if bad:
        i, reason = bad[0]
        where = dataset.paths[i] if hasattr(dataset, "paths") else f"item {i}"
        raise MsfkitError(f"{where}: {reason} ({len(bad)} images could not be read)")
    return feats, np.asarray(dataset.labels)
