"""ResNet backbones that return pooled features (torchvision key names, `fc` removed).

The ResNets are `msfkit.models.resnet`'s: torchvision's modules, weights and initialisation,
without torchvision's import time.

`stem="imagenet"` is torchvision's 7x7/2 conv + max-pool, right for 224 px inputs.
`stem="cifar"` is the usual small-image variant (3x3/1 conv, no max-pool), right for
32-64 px inputs such as Fashion-MNIST; key names stay torchvision's, only conv1's shape changes.
Two variants in between cost a quarter of the cifar stem at the same size (layer1 at half the
input's side, as the cifar stem at half the size): `stem="cifar-maxpool"` (3x3/1 conv + the max-pool)
and `stem="cifar-s2"` (3x3/2 conv, no max-pool). Their conv1 has the cifar stem's shape.
"""

from __future__ import annotations

from contextlib import nullcontext

from torch import nn

from msfkit.models.config import FEATURE_DIMS, STEMS, feature_dim
from msfkit.models.errors import MsfkitError
from msfkit.models.resnet import resnet, uninitialised

__all__ = ["FEATURE_DIMS", "STEMS", "build_backbone", "feature_dim"]


def build_backbone(arch: str, stem: str = "imagenet", *, init: bool = True) -> nn.Module:
    """A randomly initialised ResNet whose forward gives (N, D) pooled features; `init=False`: its
    tensors allocated but not filled (`msfkit.models.resnet.uninitialised`), for weights loaded next."""
    if arch not in FEATURE_DIMS:
        raise MsfkitError(f"unknown arch {arch!r}; expected one of {', '.join(FEATURE_DIMS)}")
    if stem not in STEMS:
        raise MsfkitError(f"unknown stem {stem!r}; expected one of {', '.join(STEMS)}")
    with nullcontext() if init else uninitialised():
        net = resnet(arch)
        if stem != "imagenet":
            stride = 2 if stem == "cifar-s2" else 1
            net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=stride, padding=1, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
            if stem != "cifar-maxpool":
                net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net
