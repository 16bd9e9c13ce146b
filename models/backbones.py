"""ResNet backbones that return pooled features (torchvision key names, `fc` removed).

`stem="imagenet"` is torchvision's 7x7/2 conv + max-pool, right for 224 px inputs.
`stem="cifar"` is the usual small-image variant (3x3/1 conv, no max-pool), right for
32-64 px inputs such as Fashion-MNIST; key names stay torchvision's, only conv1's shape changes.
"""

from __future__ import annotations

from torch import nn

from msfkit.models.errors import MsfkitError

FEATURE_DIMS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048}
STEMS = ("imagenet", "cifar")


def build_backbone(arch: str, stem: str = "imagenet") -> nn.Module:
    """A randomly initialised ResNet whose forward gives (N, D) pooled features."""
    import torchvision

    if arch not in FEATURE_DIMS:
        raise MsfkitError(f"unknown arch {arch!r}; expected one of {', '.join(FEATURE_DIMS)}")
    if stem not in STEMS:
        raise MsfkitError(f"unknown stem {stem!r}; expected one of {', '.join(STEMS)}")
    net = getattr(torchvision.models, arch)(weights=None)
    if stem == "cifar":
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


def feature_dim(arch: str) -> int:
    """Width of the pooled features of `arch` (512 for ResNet18/34, 2048 for ResNet50/101)."""
    if arch not in FEATURE_DIMS:
        raise MsfkitError(f"unknown arch {arch!r}; expected one of {', '.join(FEATURE_DIMS)}")
    return FEATURE_DIMS[arch]
