"""Image preprocessing that every msfkit path shares, so an image embeds the same everywhere.

`to_rgb` turns any Pillow image (EXIF-rotated, RGBA, LA, P with transparency, CMYK, 1-bit,
16-bit, float) into 8-bit RGB by one fixed rule: apply EXIF orientation, composite transparency
over white, map 16-bit ranges to 8 bits by dropping the low byte, clip float images to [0, 255].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB view of `img`, upright and with transparency flattened onto white."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I"):  # I, I;16, I;16B, ...: 16-bit data in a wider container
        arr = np.asarray(img, dtype=np.int64)
        return Image.fromarray((np.clip(arr, 0, 65535) >> 8).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info or mode == "PA":
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


@dataclass(frozen=True)
class Preprocess:
    """A model config's eval preprocessing, in two halves that every msfkit path runs in this order.

    `crop` (in decoding workers): Resize(shorter side) -> CenterCrop -> uint8 (3, S, S), a quarter
    of the bytes of floats. `normalize` (on the model's device): uint8 (N, 3, S, S) -> float32,
    exactly what ToTensor + Normalize compute. Calling it does both on one image, as a transform.
    """

    image_size: int
    resize: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def crop(self, image: Image.Image) -> torch.Tensor:
        """uint8 (3, S, S) centre crop of an 8-bit RGB image."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        image = F.resize(image, self.resize, interpolation=InterpolationMode(self.interpolation))
        return F.pil_to_tensor(F.center_crop(image, self.image_size))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, S, S) on any device -> float32 normalised as ToTensor + Normalize do."""
        import torch

        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return x.float().div_(255).sub_(mean).div_(std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Any PIL image -> normalised float (3, S, S): to_rgb, crop, normalize."""
        return self.normalize(self.crop(to_rgb(image))[None])[0]


def eval_transform(image_size: int, resize: int, interpolation: str, mean, std) -> Preprocess:
    """The eval transform of a config: PIL image -> normalised (3, S, S) tensor (a `Preprocess`)."""
    return Preprocess(image_size, resize, interpolation, tuple(mean), tuple(std))
