"""`init=MODEL`: start a run from a model folder or a Hub id (`org/name[@revision]`), not random weights.

The model's backbone is copied into the online AND the target network (the target starts as the
online network's copy, as at random init). A model folder holds a backbone only, so the projection
and prediction heads start from the run's seeded random init. The architecture and stem are the
model's: they are taken from it, with a line saying so when the config asked for others. The model
loaded (name, Hub revision, fingerprint) is recorded in the checkpoint and in the provenance of
the run's model folder; `--resume` continues from the checkpoint and never loads MODEL again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from msfkit.models import Encoder
from msfkit.training.config import TrainConfig


def load_init(cfg: TrainConfig) -> tuple[TrainConfig, Encoder | None, str]:
    """(config with the model's arch and stem, the loaded encoder, a line to print or "")."""
    if not cfg.init:
        return cfg, None, ""
    encoder = Encoder.from_pretrained(cfg.init)
    arch, stem = encoder.config.arch, encoder.config.stem
    note = ""
    if (cfg.arch, cfg.stem) != (arch, stem):
        note = (
            f"init={cfg.init}: arch={arch} stem={stem} taken from the model "
            f"(the config said arch={cfg.arch} stem={cfg.stem})"
        )
    return dataclasses.replace(cfg, arch=arch, stem=stem), encoder, note


def start_from(model, encoder: Encoder) -> dict[str, Any]:
    """Copy `encoder`'s backbone into `model`'s (an MSF) online and target networks; returns the
    record for the checkpoint and the provenance."""
    model.online.backbone.load_state_dict(encoder.backbone.state_dict())
    model.target.load_state_dict(model.online.state_dict())
    record = {"model": encoder.name, "fingerprint": encoder.fingerprint}
    if encoder.revision:
        record["revision"] = encoder.revision
    return record
