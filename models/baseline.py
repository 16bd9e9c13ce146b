"""Baseline model folders: a random-init (or torchvision-weights) encoder to compare trained ones with."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from msfkit.models.backbones import build_backbone
from msfkit.models.config import EncoderConfig, default_resize
from msfkit.models.encoder import CONFIG_NAME, Encoder, check_state_dict
from msfkit.models.errors import MsfkitError


def init_model_folder(
    arch: str,
    out: str | os.PathLike,
    *,
    stem: str = "imagenet",
    image_size: int = 224,
    resize: int | None = None,
    weights: str | os.PathLike | None = None,
    seed: int = 0,
    force: bool = False,
) -> tuple[Path, str]:
    """Write the model folder `out` and return (its path, the encoder's fingerprint).

    Its config is a trained model's of the same arch, stem and image size (the default resize
    included), so that the two differ in weights and provenance only.

    `weights`: a torchvision state dict (read with weights_only=True; its `fc.*` head is dropped,
    every other key must match). Without it the backbone is torchvision's initialisation under
    `seed`, so the same command always gives the same baseline.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (force and (out / CONFIG_NAME).is_file()):
        raise MsfkitError(f"{out}: exists; --force replaces a model folder, nothing else")
    resize = default_resize(image_size) if resize is None else resize  # a trained model's, by the same rule
    method = "torchvision weights" if weights else "random init"
    provenance = {"method": method, "seed": None if weights else seed, "weights": weights and str(weights)}
    config = EncoderConfig(arch=arch, stem=stem, image_size=image_size, resize=resize, provenance=provenance)
    torch.manual_seed(seed)
    encoder = Encoder(config, build_backbone(arch, stem, init=weights is None))  # weights: no init to replace
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as e:  # a pickle that needs more than tensors, or not a torch file at all
            raise MsfkitError(f"{weights}: not a state dict read safely ({type(e).__name__})") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise MsfkitError(f"{weights}: expected a state dict of tensors")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        check_state_dict(state, encoder.backbone.state_dict(), str(weights))
        encoder.backbone.load_state_dict(state)
    encoder.save_pretrained(out)
    return out, encoder.fingerprint
