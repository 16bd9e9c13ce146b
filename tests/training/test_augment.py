"""The two views of docs/method.md "Augmentations", made per image by PIL (augment_on=workers)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from msfkit.training.augment import GaussianBlur, view_transform


def _blur(tf) -> GaussianBlur:
    (blur,) = [t for a in tf.transforms for t in getattr(a, "transforms", []) if isinstance(t, GaussianBlur)]
    return blur


@pytest.mark.parametrize(("size", "low", "high"), [(224, 0.1, 2.0), (32, 0.1 * 32 / 224, 2.0 * 32 / 224)])
def test_blur_sigma_is_moco_v2s_at_224_px_and_scales_with_the_image(size, low, high):
    blur = _blur(view_transform("strong", size))
    assert (blur.low, blur.high) == pytest.approx((low, high))


def test_weak_view_has_no_colour_or_blur_and_both_give_normalised_crops(photo_paths):
    weak, strong = view_transform("weak", 32), view_transform("strong", 32)
    assert not any(hasattr(t, "transforms") for t in weak.transforms)  # no RandomApply
    img = Image.open(photo_paths[0])
    torch.manual_seed(0)
    for tf in (weak, strong):
        x = tf(img)
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    with pytest.raises(ValueError, match="weak' or 'strong"):
        view_transform("medium", 32)


def test_blur_off_and_the_crop_scale_reach_the_pil_views():
    tf = view_transform("strong", 32, blur=0.0, crop_scale=0.6)
    assert not any(isinstance(t, GaussianBlur) for a in tf.transforms for t in getattr(a, "transforms", []))
    (crop,) = [t for t in tf.transforms if type(t).__name__ == "RandomResizedCrop"]
    assert crop.scale == (0.6, 1.0)
    assert _blur(view_transform("strong", 32)).high == pytest.approx(2.0 * 32 / 224)  # on by default
