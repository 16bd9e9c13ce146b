"""A PNG of what the device views look like: 8 Fashion-MNIST images x (original, weak view, strong view).

    .venv/bin/python bench/views_grid.py            # writes bench/views_grid.png

The views are those `msfkit train` makes with augment_on=device (`training.views.make_views`) for
the first batch of epoch 0 at seed 0, 32 px, shown 4x larger (nearest neighbour).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from msfkit.models.config import IMAGENET_MEAN, IMAGENET_STD
from msfkit.training.data import UInt8Batches, first, open_dataset
from msfkit.training.views import batch_generator, make_views


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).with_name("views_grid.png")))
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--zoom", type=int, default=4)
    args = ap.parse_args()
    images, sizes, _ = UInt8Batches(first(open_dataset("fashion-mnist"), args.n), args.size).__getitems__(
        list(range(args.n))
    )
    g = batch_generator(0, 0, 0)
    weak, strong = make_views(images, sizes, g, kinds=("weak", "strong"), image_size=args.size)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    original = torch.nn.functional.interpolate(images.float() / 255, size=args.size, mode="nearest")
    columns = [original.expand(-1, 3, -1, -1), weak * std + mean, strong * std + mean]
    rows = [torch.cat([c[i] for c in columns], 2) for i in range(args.n)]  # (3, size, 3 size) each
    grid = torch.cat(rows, 1).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    img = Image.fromarray(np.ascontiguousarray(grid)).resize(
        (grid.shape[1] * args.zoom, grid.shape[0] * args.zoom), Image.NEAREST
    )
    img.save(args.out)
    print(f"{args.out}: {args.n} images x (original, weak, strong), {img.width}x{img.height} px")


if __name__ == "__main__":
    main()
