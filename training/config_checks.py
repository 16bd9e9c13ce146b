"""Checks of a training config's values: numeric ranges, and YAML read without aliases."""

from __future__ import annotations

import math

import yaml

from msfkit.models.errors import MsfkitError

_RANGES = {  # key: (low, high, low itself allowed); high is allowed
    "k": (1, math.inf, True), "bank_size": (1, math.inf, True), "epochs": (1, math.inf, True),
    "batch_size": (1, math.inf, True), "image_size": (1, math.inf, True),
    "crop_scale": (0.0, 1.0, False), "blur": (0.0, 1.0, True), "ema": (0.0, 1.0, True),
    "lr": (0.0, math.inf, False), "momentum": (0.0, 1.0, True), "weight_decay": (0.0, math.inf, True),
    "workers": (0, 1024, True), "threads": (0, 4096, True), "log_every": (1, math.inf, True),
    "save_every": (1, math.inf, True), "max_bad_share": (0.0, 1.0, True),
    "max_minutes": (0.0, math.inf, True),
    "max_steps": (0, math.inf, True), "warmup_epochs": (0, math.inf, True), "knn_k": (1, math.inf, True),
}  # fmt: skip


def check_ranges(cfg) -> None:
    """A one-line error naming the first key out of its range (negative lr, log_every=0, ...)."""
    for key, (low, high, low_ok) in _RANGES.items():
        value = getattr(cfg, key)
        if not (math.isfinite(value) and (value >= low if low_ok else value > low) and value <= high):
            bound = f">= {low}" if low_ok else f"> {low}"
            bound += f" and <= {high}" if math.isfinite(high) else ""
            raise MsfkitError(f"config: {key} must be a finite number {bound}, not {value}")


def safe_yaml(text: str):
    """yaml.safe_load without anchors and aliases: a config never needs them, and an alias bomb
    (a few lines that expand to gigabytes) must not exhaust memory."""

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed in msfkit configs")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliases)  # noqa: S506 - a SafeLoader subclass
