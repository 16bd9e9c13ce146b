"""Image preprocessing that every msfkit path shares, so an image embeds the same everywhere.

`to_rgb` turns any Pillow image (EXIF-rotated, RGBA, LA, P with transparency, CMYK, 1-bit,
16-bit, float) into 8-bit RGB by one fixed rule: apply EXIF orientation, composite transparency
over white, map 16-bit ranges to 8 bits by dropping the low byte, clip float images to [0, 255].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


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
        """uint8 (3, S, S) centre crop of an 8-bit RGB image resized by its shorter side.

        Only the region the crop keeps is resized (PIL's `resize(box=...)`, the crop mapped back to
        source pixels): the pixels of resizing the whole image and then cropping, in memory bounded by
        the output for any shape, where a 1 x 100,000 strip resized whole would take 256 x 25.6M."""
        size = self.image_size
        (x0, x1, w, left), (y0, y1, h, top) = (
            _kept(n, r, size) for n, r in zip(image.size, _resized(image.size, self.resize), strict=True)
        )
        kept = image.resize((w, h), _RESAMPLE[self.interpolation], box=(x0, y0, x1, y1))
        if (w, h) != (size, size):  # a crop larger than the resized image: zero padding, as CenterCrop's
            canvas = Image.new("RGB", (size, size))
            canvas.paste(kept, (left, top))
            kept = canvas
        return torch.from_numpy(np.array(kept)).permute(2, 0, 1)  # torchvision's pil_to_tensor

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, S, S) on any device -> float32 normalised as ToTensor + Normalize do."""
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return x.float().div_(255).sub_(mean).div_(std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Any PIL image -> normalised float (3, S, S): to_rgb, crop, normalize."""
        return self.normalize(self.crop(to_rgb(image))[None])[0]


def _resized(size: tuple[int, int], shorter: int) -> tuple[int, int]:
    """(width, height) after torchvision's Resize(shorter): the shorter side to `shorter`, the longer
    one scaled and rounded down."""
    w, h = size
    if w <= h:
        return shorter, int(shorter * h / w)
    return int(shorter * w / h), shorter


def _kept(n: int, r: int, crop: int) -> tuple[float, float, int, int]:
    """Along one side of n source pixels resized to r, what CenterCrop(crop) keeps: (first and end
    source coordinate, output pixels, where they go in the crop)."""
    if crop >= r:  # all of it, centred in zero padding
        return 0.0, float(n), r, (crop - r) // 2
    first = int(round((r - crop) / 2.0))
    return first * n / r, (first + crop) * n / r, crop, 0
