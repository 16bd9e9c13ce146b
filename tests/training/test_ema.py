"""The target EMA: one update is the formula over parameters; BatchNorm buffers are not averaged."""

from __future__ import annotations

import copy
import math

import torch

from msfkit.training.ema import ema_momentum, ema_update_
from msfkit.training.msf import Network


def _pair() -> tuple[Network, Network]:
    torch.manual_seed(0)
    online = Network("resnet18", "cifar")
    target = copy.deepcopy(online)
    with torch.no_grad():  # make every online parameter and buffer differ from the target's
        for p in online.parameters():
            p.add_(torch.randn_like(p))
        online.train()(torch.randn(4, 3, 32, 32))  # moves online BN running stats
    return online, target


def test_one_update_equals_the_formula_for_every_parameter():
    online, target = _pair()
    before = {k: v.clone() for k, v in target.named_parameters()}
    ema_update_(target, online, momentum=0.9)
    for name, p in target.named_parameters():
        expected = 0.9 * before[name] + 0.1 * dict(online.named_parameters())[name]
        assert torch.allclose(p, expected, atol=1e-6, rtol=0), name


def test_batchnorm_buffers_are_not_averaged():
    online, target = _pair()
    before = {k: v.clone() for k, v in target.named_buffers()}
    ema_update_(target, online, momentum=0.5)
    for name, b in target.named_buffers():
        assert torch.equal(b, before[name]), name
        assert not torch.equal(b, dict(online.named_buffers())[name]) or name.endswith("num_batches_tracked")


def test_momentum_schedules():
    assert ema_momentum(0.99, 500, 1000, "constant") == 0.99
    assert math.isclose(ema_momentum(0.99, 0, 1000, "cosine"), 0.99)
    assert math.isclose(ema_momentum(0.99, 500, 1000, "cosine"), 0.995)
    assert math.isclose(ema_momentum(0.99, 1000, 1000, "cosine"), 1.0)
