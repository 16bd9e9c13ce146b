"""Image preprocessing that every msfkit path shares, so an image embeds the same everywhere.

`to_rgb` turns any Pillow image (EXIF-rotated, RGBA, LA, P with transparency, CMYK, 1-bit,
16-bit, float) into 8-bit RGB by one fixed rule: apply EXIF orientation, composite transparency
over white, map 16-bit ranges to 8 bits by dropping the low byte, clip float images to [0, 255].
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

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


def eval_transform(image_size: int, resize: int, interpolation: str, mean, std):
    """Resize(shorter side) -> CenterCrop -> tensor -> Normalize, as torchvision composes it."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Lambda(to_rgb),
            T.Resize(resize, interpolation=T.InterpolationMode(interpolation)),
            T.CenterCrop(image_size),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )
