"""bench/naive_embed.py: the plain torchvision loop that bench/embed.py measures msfkit against
computes msfkit's vectors, so the two are compared doing the same work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.naive_embed import load, naive_loop
from msfkit.models import Encoder, EncoderConfig


def photos(folder, sizes):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i, (w, h) in enumerate(sizes):
        smooth = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        Image.fromarray(smooth).resize((w, h), Image.Resampling.BICUBIC).save(folder / f"{i}.jpg")
    return sorted(folder.glob("*.jpg"))


@pytest.mark.slow  # embeds with a real model
def test_the_naive_loop_computes_msfkits_vectors(tmp_path):
    torch.manual_seed(0)
    encoder = Encoder(EncoderConfig(arch="resnet18", image_size=32, resize=36))
    model = encoder.save_pretrained(tmp_path / "model")
    paths = photos(tmp_path / "photos", [(48, 40), (40, 64), (90, 50)])
    net, tf = load(model)
    naive = naive_loop(net, tf, paths, 2, torch.device("cpu"))  # batches of 2: one full, one short
    ours = encoder.embed([Image.open(p) for p in paths])
    assert naive.shape == ours.shape == (3, 512)
    cos = naive @ ours.T
    # the same vector within float error (msfkit resizes only the crop's box: at these small sizes a
    # few pixels differ from torchvision's Resize + CenterCrop by one level), and not another image's
    assert np.diag(cos).min() >= 0.9999
    assert cos.argmax(axis=1).tolist() == [0, 1, 2]


def test_a_stem_torchvision_does_not_build_is_refused(tmp_path):
    model = Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32)).save_pretrained(
        tmp_path / "m"
    )
    with pytest.raises(SystemExit, match="torchvision's own stem, not 'cifar'"):
        load(model)
