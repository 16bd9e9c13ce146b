"""The plain PyTorch loop that bench/embed.py measures `msfkit embed` against, written as a user
would write it: PIL open, torchvision transforms, torchvision's ResNet with the model folder's
weights, fp32, batches of 32, one process.

    .venv/bin/python bench/naive_embed.py MODEL_DIR IMAGE_DIR OUT.npy [--batch-size 32] [--device cpu]

bench/embed.py runs it as a process of its own, so that its start-up (importing torch and
torchvision, building the model) counts as `msfkit embed`'s does, and times `naive_loop` inside its
own process too. OUT.npy gets the L2-normalised vectors, one row per JPEG of IMAGE_DIR in name order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file
from torchvision import transforms as T


def load(model_dir: Path) -> tuple[torch.nn.Module, T.Compose]:
    """The folder's network as torchvision builds it (fc removed, the folder's weights) in eval mode,
    and its eval transform: Resize(shorter side), CenterCrop, ToTensor, Normalize."""
    c = json.loads((model_dir / "config.json").read_text())
    if c["stem"] != "imagenet":
        sys.exit(f"{model_dir}: the naive loop builds torchvision's own stem, not {c['stem']!r}")
    net = getattr(torchvision.models, c["arch"])(weights=None)
    net.fc = torch.nn.Identity()
    net.load_state_dict(load_file(model_dir / "model.safetensors"))
    resize = T.Resize(c["resize"], interpolation=T.InterpolationMode(c["interpolation"]))
    tf = T.Compose([resize, T.CenterCrop(c["image_size"]), T.ToTensor(), T.Normalize(c["mean"], c["std"])])
    return net.eval(), tf


@torch.inference_mode()
def naive_loop(
    net: torch.nn.Module, tf: T.Compose, paths: list[Path], batch_size: int, device: torch.device
) -> np.ndarray:
    """Open, transform and stack each batch of `paths`, run the model: L2-normalised float32 rows."""
    net = net.to(device)
    out = []
    for i in range(0, len(paths), batch_size):
        x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[i : i + batch_size]])
        out.append(torch.nn.functional.normalize(net(x.to(device)), dim=1).cpu())
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("image_dir", type=Path)
    ap.add_argument("out", type=Path, help="the vectors, as .npy")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    net, tf = load(args.model_dir)
    paths = sorted(args.image_dir.glob("*.jpg"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, naive_loop(net, tf, paths, args.batch_size, torch.device(args.device)))


if __name__ == "__main__":
    main()
