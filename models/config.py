"""An encoder's config (`config.json` of a model folder): architecture, preprocessing, provenance.

Checked when it is made or loaded, so a bad value (a zero std, a string for a size) is one clear
error naming the key, never NaN vectors or a failure per image. docs/formats.md lists every key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msfkit.models.errors import MsfkitError

FORMAT_VERSION = 1
NETWORKS = ("online", "target")
FEATURE_DIMS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048}
STEMS = ("imagenet", "cifar", "cifar-maxpool", "cifar-s2")  # models/backbones.py says what each is
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")  # models/preprocess.py resamples each
WHOLE_UP_TO = 64  # px: images up to this size are evaluated whole (resize = crop), larger ones cropped


def default_resize(image_size: int) -> int:
    """The shorter side before the centre crop of `image_size` when a config does not say: the
    image whole up to 64 px (Fashion-MNIST, CIFAR: evaluated as trained), else the ImageNet way,
    size x 256/224. The one rule for `msfkit train`, `msfkit export` and `msfkit models init`."""
    return image_size if image_size <= WHOLE_UP_TO else round(image_size * 256 / 224)


def feature_dim(arch: str) -> int:
    """Width of the pooled features of `arch` (512 for ResNet18/34, 2048 for ResNet50/101)."""
    if arch not in FEATURE_DIMS:
        raise MsfkitError(f"unknown arch {arch!r}; expected one of {', '.join(FEATURE_DIMS)}")
    return FEATURE_DIMS[arch]


@dataclass
class EncoderConfig:
    """What an encoder is and how to feed it; saved as `config.json`."""

    arch: str = "resnet50"  # torchvision ResNet name
    stem: str = "imagenet"  # "imagenet" (7x7/2 + max-pool) or "cifar" (3x3/1, for 32-64 px)
    network: str = "online"  # which MSF network the weights came from: "online" or "target"
    image_size: int = 224  # centre-crop size fed to the network
    resize: int = 256  # shorter side after resizing, before the crop
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    provenance: dict[str, Any] = field(default_factory=dict)  # method, k, bank size, epochs, data

    def __post_init__(self) -> None:
        feature_dim(self.arch)  # validates the name
        if self.stem not in STEMS:
            raise MsfkitError(f"config: unknown stem {self.stem!r}; expected one of {', '.join(STEMS)}")
        if self.network not in NETWORKS:
            raise MsfkitError(f"config: network must be 'online' or 'target', not {self.network!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise MsfkitError(f"config: unknown interpolation {self.interpolation!r}")
        for key in ("image_size", "resize"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or not 8 <= value <= 4096:
                raise MsfkitError(f"config: {key} must be a whole number of pixels in 8..4096, not {value!r}")
        for key in ("mean", "std"):
            value = getattr(self, key)
            ok = isinstance(value, (list, tuple)) and len(value) == 3
            ok = ok and all(_is_number(v) for v in value)
            if not ok or (key == "std" and min(value) <= 0):
                need = "three positive numbers" if key == "std" else "three finite numbers"
                raise MsfkitError(f"config: {key} must be {need} (one per RGB channel), not {value!r}")
        if not isinstance(self.provenance, dict):
            raise MsfkitError(f"config: provenance must be an object, not {self.provenance!r}")
        self.mean, self.std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)

    @property
    def embedding_dim(self) -> int:
        return feature_dim(self.arch)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {"format_version": FORMAT_VERSION, "embedding_dim": self.embedding_dim, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderConfig:
        if not isinstance(d, dict):
            raise MsfkitError(f"a config is a JSON object, not {type(d).__name__}")
        d = dict(d)
        version = d.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise MsfkitError(
                f"config.json has format_version {version!r}; this msfkit reads {FORMAT_VERSION}"
            )
        d.pop("embedding_dim", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise MsfkitError(f"config.json has unknown fields: {', '.join(unknown)}")
        return cls(**d)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_config(path: Path) -> EncoderConfig:
    """A model folder's config.json, checked; every problem one line naming the file."""
    try:
        return EncoderConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as e:
        raise MsfkitError(f"{path}: unreadable config ({type(e).__name__}: {e})") from None
    except MsfkitError as e:
        raise MsfkitError(f"{path}: {e}") from None


def fingerprint(config: EncoderConfig, weights: Iterable[tuple[str, Any]]) -> str:
    """A hash of the config and every weight (name, C-contiguous array), in name order: two
    encoders embed alike iff it matches. `Encoder.fingerprint` and `models info` both use it."""
    h = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    for key, array in sorted(weights, key=lambda kv: kv[0]):
        h.update(key.encode())
        h.update(array.tobytes())
    return h.hexdigest()[:16]
