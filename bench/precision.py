"""bf16 against fp32 embeddings of real images: whether `--precision auto` (bf16 where the device
computes it natively) keeps each image's vector and its nearest neighbours. Nothing is timed.

    .venv/bin/python bench/precision.py                                    # photos + 2,000 Fashion-MNIST
    .venv/bin/python bench/precision.py --fashion 10000 --model demo_out/run/model

Image sets: a folder of real photos (the bundled data/photos by default), each image at 224 px,
and the first `--fashion` images of the Fashion-MNIST test split at 32 px. Models: a ResNet18 and a
ResNet50 with random weights (seed 0) whose batch norms saw the images (with the default statistics
every image embeds alike, and neighbours would be noise), and any trained model folder given with
`--model` (on the image set of its own size). Every image goes through msfkit's one path
(`embed_items`, the eager model) twice, in fp32 and in bf16. Per model and set: the cosine of each
image's two vectors (min, median), and how far each image's 10 nearest neighbours under bf16 are
those under fp32 (mean overlap, and the share of images whose 10 are the same set).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibrate import calibrate_batch_norm  # noqa: E402
from msfkit.data.datasets import ArrayImageDataset, load_fashion_mnist  # noqa: E402
from msfkit.embedding import EmbedOptions, embed_items  # noqa: E402
from msfkit.models import Encoder, EncoderConfig, to_rgb  # noqa: E402
from msfkit.models.runtime import cpu_flags_line  # noqa: E402

K = 10


def calibrated(arch: str, size: int, images, sample: int = 256) -> Encoder:
    """A randomly initialised `arch` (seed 0) whose batch-norm statistics are those of `images`."""
    torch.manual_seed(0)
    stem = "cifar" if size <= 64 else "imagenet"
    encoder = Encoder(EncoderConfig(arch=arch, stem=stem, image_size=size, resize=round(size * 256 / 224)))
    tf = encoder.transform()
    x = torch.stack([tf(images.image(i)) for i in range(min(sample, len(images)))])
    return calibrate_batch_norm(encoder, x)


def neighbours(x: np.ndarray, k: int = K) -> np.ndarray:
    """Each row's k nearest other rows by cosine (unit rows), nearest first."""
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :k]


def agreement(encoder: Encoder, images) -> dict[str, float]:
    """Cosine of each image's fp32 and bf16 vectors, and the overlap of their k nearest neighbours."""
    vectors = {}
    for precision in ("fp32", "bf16"):
        vectors[precision], bad = embed_items(encoder, images, EmbedOptions(precision=precision, workers=0))
        assert not bad, bad
    cos = (vectors["fp32"] * vectors["bf16"]).sum(1)
    a, b = neighbours(vectors["fp32"]), neighbours(vectors["bf16"])
    overlap = np.array([len(set(r) & set(s)) / K for r, s in zip(a, b, strict=True)])
    return {
        "cos_min": float(cos.min()),
        "cos_median": float(np.median(cos)),
        "overlap": float(overlap.mean()),
        "same_10": float((overlap == 1).mean()),
    }


class Photos:
    """The JPEGs of a folder, as a dataset with `image(i)` (what `embed_items` and `calibrated` read)."""

    def __init__(self, folder: Path) -> None:
        self.paths = sorted(folder.glob("*.jpg"))

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> Image.Image:
        return to_rgb(Image.open(self.paths[i]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=REPO / "data" / "photos", help="a folder of JPEGs")
    ap.add_argument("--fashion", type=int, default=2000, help="Fashion-MNIST test images (0: none)")
    ap.add_argument("--model", action="append", default=[], help="a trained model folder (repeatable)")
    args = ap.parse_args()

    sets = {224: ("photos", Photos(args.photos))}
    if args.fashion:
        sets[32] = ("fashion-mnist test", ArrayImageDataset(load_fashion_mnist("test")[0][: args.fashion]))
    print(cpu_flags_line())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; bf16 against fp32, k = {K}\n")
    print(f"{'model':<34}{'images':<22}{'cos min':>9}{'median':>9}{'10-NN overlap':>15}{'same 10':>9}")
    runs = [
        (f"{arch} (random, BN on the set)", size, None) for size in sets for arch in ("resnet18", "resnet50")
    ]
    runs += [(name, None, name) for name in args.model]
    for name, size, folder in runs:
        encoder = Encoder.from_pretrained(folder) if folder else None
        size = size or encoder.config.image_size
        if size not in sets:
            print(f"{name:<34}no image set at {size} px")
            continue
        label, images = sets[size]
        arch = name.split(" ")[0]
        r = agreement(encoder or calibrated(arch, size, images), images)
        print(
            f"{name:<34}{f'{label} ({len(images)})':<22}{r['cos_min']:>9.5f}{r['cos_median']:>9.5f}"
            f"{r['overlap']:>15.3f}{r['same_10']:>9.1%}"
        )


if __name__ == "__main__":
    main()
