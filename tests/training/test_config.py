"""The training config: paper defaults, presets, YAML, typed key=value overrides."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msfkit.models.errors import MsfkitError
from msfkit.training.config import TrainConfig, load_config


def test_defaults_are_the_papers_resnet50_recipe():
    c = TrainConfig()
    assert (c.arch, c.image_size, c.batch_size, c.epochs) == ("resnet50", 224, 256, 200)
    assert (c.lr, c.momentum, c.weight_decay, c.warmup_epochs) == (0.05, 0.9, 1e-4, 0)
    assert (c.k, c.bank_size, c.ema, c.ema_schedule, c.augmentation) == (
        5,
        1_024_000,
        0.99,
        "constant",
        "weak/strong",
    )
    assert c.method == "msf" and TrainConfig(k=1).method == "byol-asym"


def test_preset_then_yaml_then_overrides(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("epochs: 3\nk: 2\nlr: 0.1\n")
    c = load_config("fashion-mnist", f, ["k=1", "lr=1e-3", "out=2024", "channels_last=false", "ema=1"])
    assert (c.arch, c.stem, c.image_size) == ("resnet18", "cifar", 32)
    assert (c.epochs, c.k, c.lr, c.out, c.channels_last, c.ema) == (3, 1, 1e-3, "2024", False, 1.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=2.5", "epochs must be int"),
        ("channels_last=yes please", "channels_last must be bool"),
        ("bogus=1", "unknown keys bogus"),
        ("augmentation=strong/weak", "augmentation must be one of"),
        ("k=0", "k must be a finite number >= 1, not 0"),
        ("epochs", "is not key=value"),
        ("blur=1.5", r"blur must be a finite number >= 0.0 and <= 1.0, not 1.5"),
        ("crop_scale=0", r"crop_scale must be a finite number > 0.0 and <= 1.0, not 0.0"),
        ("ema=1.01", "ema must be a finite number"),
        ("bank_size=0", "bank_size must be a finite number >= 1"),
    ],
)
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(MsfkitError, match=message):
        load_config(overrides=[override])


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(MsfkitError, match="unknown preset"):
        load_config("imagenet-1k")
    f = tmp_path / "bad.yaml"
    f.write_text("- a list\n")
    with pytest.raises(MsfkitError, match="expected a mapping"):
        load_config(yaml_path=f)


def test_lr_is_the_references_cosine_set_per_epoch_or_per_step_with_warmup():
    from msfkit.training.schedules import schedules

    lr, m = schedules(TrainConfig(epochs=4, lr=0.1), steps_per_epoch=3)
    per_epoch = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert np.allclose(lr, np.repeat(per_epoch, 3)) and np.all(m == 0.99)
    lr, m = schedules(
        TrainConfig(epochs=4, lr=0.1, lr_schedule="step", warmup_epochs=1, ema_schedule="cosine"), 3
    )
    assert np.allclose(lr[:3], [0.1 / 3, 0.2 / 3, 0.1])  # linear warm-up over the first epoch
    assert np.allclose(lr[3:], [0.1 * 0.5 * (1 + math.cos(math.pi * s / 9)) for s in range(9)])
    assert m[0] == 0.99 and np.all(np.diff(m) > 0) and m[-1] < 1
