"""ResNet-18/34/50/101 as torchvision builds them, without importing torchvision.

The same modules, key names, forward and initialisation, created in the same order, so that one
seed gives torchvision's random weights bit for bit and a torchvision state dict loads as it is
(tests/msfkit/models/test_resnet.py compares both against `torchvision.models`). msfkit keeps its
own copy because importing torchvision imports `torch._dynamo` (through `torchvision.ops`): 1.7 s
of a 4.3 s one-image `msfkit search` on 2 cores (bench/startup.py), for four class definitions.
Training, which needs torchvision's transforms, imports it as before.

A model about to receive its weights is built `uninitialised()`: its tensors are allocated but not
filled, since the loaded weights replace every one (ResNet50's random init costs 0.3 s of a
one-image `msfkit search`). It stays on the CPU: the meta device imports `torch._dynamo`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

LAYERS = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
}


def conv3x3(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1, 3x3 (the stride: ResNet v1.5, as torchvision), 1x1 convolutions and a shortcut (ResNet-50/101)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet (no groups, no dilation, zero_init_residual off), with its 1000-class `fc`."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, ...]) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, 1000)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            out = planes * block.expansion
            downsample = nn.Sequential(conv1x1(self.inplanes, out, stride), nn.BatchNorm2d(out))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet(arch: str) -> ResNet:
    """ResNet `arch` (a key of LAYERS) with torchvision's random initialisation (none under
    `uninitialised()`)."""
    return ResNet(BasicBlock if arch in ("resnet18", "resnet34") else Bottleneck, LAYERS[arch])


# the in-place fills that modules' reset_parameters call besides torch.nn.init's functions
_FILLS = {Tensor.uniform_, Tensor.normal_, Tensor.fill_, Tensor.zero_}


class _SkipFills(TorchFunctionMode):
    """Every torch.nn.init function (kaiming_uniform_, constant_, ...) and every fill of `_FILLS`
    returns its tensor untouched; everything else runs as usual."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        in_place_init = getattr(func, "__module__", None) == nn.init.__name__ and func.__name__.endswith("_")
        if func in _FILLS or in_place_init:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


@contextmanager
def uninitialised() -> Iterator[None]:
    """Modules built inside get their parameters and buffers allocated (`torch.empty`) but not
    initialised, and the random generator is not advanced: for a model whose every tensor is loaded
    next. Only this thread's constructions are affected (torch keeps the mode per thread)."""
    with _SkipFills():
        yield
