"""Leaks between splits for bench/curate.py: Fashion-MNIST test images copied, edited, into the train
collection, and the leaks `msfkit dedup TRAIN --against TEST` finds scored against them.

TEST is a folder of Fashion-MNIST *test* images (the same number per class), CLASS/tNNNNN.png. A
share of them, chosen at random, is copied into the collection's folder of its class, each copy
edited by one transformation, in turn (a third of the copies each):
- jpeg:   re-encoded as JPEG at quality 75 (CLASS/leak_jpeg_tNNNNN.jpg);
- crop:   2 px cut from every side, then resized back to 28 px, bilinear (CLASS/leak_crop_tNNNNN.png);
- resize: resized to 21 px (0.75x), bilinear (CLASS/leak_resize_tNNNNN.png).
The leaks are found by `msfkit.find_leaks(TRAIN, TEST)`, the function the command calls: a TEST
image is listed when its nearest TRAIN image is at least as similar as the threshold (by default
dedup's calibrated one, measured on TRAIN). Precision is over every TEST image listed; recall is
per transformation too (a listed image that was not copied has no transformation). Fashion-MNIST
holds near copies across its own splits: a listed image that was not planted is counted against
precision, and the report says how many of those are near-identical to their match in pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import msfkit
from msfkit.data.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from msfkit.models.errors import MsfkitError

TRANSFORMS = ("jpeg", "crop", "resize")
JPEG_QUALITY = 75
CROP_PX = 2
RESIZE_PX = 21
PIXEL_TWIN = 8 / 255  # mean absolute grey difference below which two images are the same picture


def edit(image: Image.Image, kind: str) -> Image.Image:
    """`image` (grey, 28 px) as the `kind` transformation leaves it (a JPEG is edited when saved)."""
    if kind == "crop":
        w, h = image.size
        return image.crop((CROP_PX, CROP_PX, w - CROP_PX, h - CROP_PX)).resize((w, h), Image.BILINEAR)
    if kind == "resize":
        return image.resize((RESIZE_PX, RESIZE_PX), Image.BILINEAR)
    return image


def plant_leaks(
    test: Path, train: Path, count: int, share: float, rng: np.random.Generator
) -> dict[str, str]:
    """Write TEST (`count` Fashion-MNIST test images) under `test` and copy a `share` of them, edited,
    into `train`'s class folders; {TEST image: its copy in TRAIN}, as paths relative to each root."""
    images, labels = load_fashion_mnist("test")
    per_class = count // len(FASHION_MNIST_CLASSES)
    rows = np.concatenate(
        [np.flatnonzero(labels == c)[:per_class] for c in range(len(FASHION_MNIST_CLASSES))]
    )
    for i in rows:
        (test / FASHION_MNIST_CLASSES[labels[i]]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(test / FASHION_MNIST_CLASSES[labels[i]] / f"t{i:05d}.png")
    copied = rng.choice(rows, size=round(share * len(rows)), replace=False)
    planted = {}
    for n, i in enumerate(sorted(copied.tolist())):
        kind, name = TRANSFORMS[n % len(TRANSFORMS)], FASHION_MNIST_CLASSES[labels[i]]
        copy = f"{name}/leak_{kind}_t{i:05d}.{'jpg' if kind == 'jpeg' else 'png'}"
        options = {"quality": JPEG_QUALITY} if kind == "jpeg" else {}
        edit(Image.fromarray(images[i]), kind).save(train / copy, **options)
        planted[f"{name}/t{i:05d}.png"] = copy
    return planted


def kind_of(copy: str) -> str:
    """The transformation of a planted copy, from its name."""
    return Path(copy).name.split("_")[1]


def report_leaks(
    train: Path, test: Path, roots: tuple[Path, Path], planted: dict[str, str], threshold: float | str
) -> float | None:
    """Print precision and recall of the leaks found from the index or store `train` against the
    store `test` (whose images lie under `roots`: TRAIN's, TEST's) at `threshold` (a number or
    "auto"); the threshold used, or None when no threshold separates copies from distinct images."""
    try:
        leaks = msfkit.find_leaks(train, test, threshold=threshold)
    except MsfkitError as e:
        print(f"leaks: no threshold: {e}")
        return None
    if leaks.calibration is not None:
        print(f"leaks: {leaks.calibration.explain()}")
    table = leaks.table
    found = {
        str(Path(p).relative_to(roots[1])): str(Path(m).relative_to(roots[0]))
        for p, m in zip(table["path"], table["match"], strict=True)
    }
    hit = set(found) & set(planted)
    precision = len(hit) / len(found) if found else float("nan")
    print(
        f"leaks (threshold {leaks.threshold:.4f}): precision {precision:.3f}, recall "
        f"{len(hit) / len(planted):.3f} ({len(hit)} of {len(planted)} planted found, {len(found)} listed)"
    )
    for kind in TRANSFORMS:
        mine = {t for t, copy in planted.items() if kind_of(copy) == kind}
        own = sum(found.get(t) == planted[t] for t in mine)
        print(
            f"  {kind:<6} {describe(kind)}: recall {len(mine & hit) / len(mine):.3f} "
            f"({len(mine & hit)} of {len(mine)}; {own} matched to their own copy)"
        )
    others = [t for t in found if t not in planted]
    twins = sum(_pixel_difference(roots[1] / t, roots[0] / found[t]) < PIXEL_TWIN for t in others)
    print(f"  listed, not planted: {len(others)}, {twins} of them the same picture as their match in pixels")
    return leaks.threshold


def describe(kind: str) -> str:
    """The transformation's settings, as the report prints them."""
    return {
        "jpeg": f"(JPEG quality {JPEG_QUALITY})",
        "crop": f"({CROP_PX} px a side, resized back)",
        "resize": f"(to {RESIZE_PX} px)",
    }[kind]


def _pixel_difference(a: Path, b: Path) -> float:
    """The mean absolute grey difference of two images at 28 px, in [0, 1]."""
    x, y = (np.asarray(Image.open(p).convert("L").resize((28, 28)), dtype=np.float32) / 255 for p in (a, b))
    return float(np.abs(x - y).mean())
