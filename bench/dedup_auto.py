"""`dedup --threshold auto` on real photos with planted copies: does it find every copy and group no
distinct photo? Each encoder is scored at the auto threshold and, for comparison, at the default 0.95.

    .venv/bin/python bench/dedup_auto.py demo_out/run/model random:resnet18 random:resnet18@32

The 28 photos of data/photos; for 9 of them three planted copies each (JPEG quality 60, resized to
60%, 2% cropped per side), as files. `random:ARCH[@SIZE]` is a random-init model (seed 0, ImageNet
stem at 224 px, or the cifar stem at SIZE px). Embedded as the demo does (draft decoding), Flat index.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

PLANTED = {"q60": "re-encoded at quality 60", "small": "resized to 60%", "crop": "2% cropped per side"}


def plant(photos: list[Path], out: Path, copied: int) -> set[frozenset[str]]:
    """Copy the photos into `out`, plant three copies of the first `copied`; the expected groups."""
    out.mkdir(parents=True)
    for p in photos:
        shutil.copy(p, out / p.name)
    groups = set()
    for p in photos[:copied]:
        im = Image.open(p).convert("RGB")
        w, h = im.size
        im.save(out / f"{p.stem}_q60.jpg", quality=60)
        im.resize((w * 3 // 5, h * 3 // 5)).save(out / f"{p.stem}_small.jpg", quality=90)
        im.crop((w // 50, h // 50, w - w // 50, h - h // 50)).save(out / f"{p.stem}_crop.jpg", quality=90)
        groups.add(frozenset([p.name] + [f"{p.stem}_{c}.jpg" for c in PLANTED]))
    return groups


def model_folder(spec: str, tmp: Path) -> Path:
    if not spec.startswith("random:"):
        return Path(spec)
    import torch

    from msfkit.models import Encoder, EncoderConfig

    arch, _, size = spec.removeprefix("random:").partition("@")
    config = EncoderConfig(arch=arch)
    if size:
        config = EncoderConfig(arch=arch, stem="cifar", image_size=int(size), resize=int(size))
    torch.manual_seed(0)
    out = tmp / spec.replace(":", "-").replace("@", "-")
    Encoder(config).save_pretrained(out)
    return out


def score(groups, expected: set[frozenset[str]]) -> tuple[int, int, int]:
    """(planted copies found together with their original, planted copies in all, wrong members:
    distinct photos in a group, or a planted group merged into another)."""
    found = [frozenset(Path(p).name for p in g["path"]) for _, g in groups.groupby("group")]
    planted = {n for e in expected for n in e}
    hit = sum(max([len(f & e) - 1 for f in found] + [0]) for e in expected)
    wrong = sum(1 for f in found for n in f if n not in planted)
    wrong += sum(max(0, sum(1 for e in expected if f & e) - 1) for f in found)
    return hit, sum(len(e) - 1 for e in expected), wrong


def main() -> None:
    from msfkit.index import build_index
    from msfkit.models.errors import MsfkitError
    from msfkit.retrieval.dedup import dedup, find_duplicates

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="model folders, or random:ARCH[@SIZE]")
    ap.add_argument("--photos", default="data/photos")
    ap.add_argument("--copied", type=int, default=9)
    args = ap.parse_args()

    import msfkit

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = sorted(Path(args.photos).glob("*.jpg"))
        expected = plant(photos, tmp / "photos", args.copied)
        print(f"{len(photos)} photos + {3 * args.copied} planted copies ({', '.join(PLANTED.values())})")
        print("| encoder | threshold | planted copies found | distinct photos grouped | time s | note |")
        print("|---|---|---|---|---|---|")
        for spec in args.models:
            model = model_folder(spec, tmp)
            root = tmp / model.name
            msfkit.embed([tmp / "photos"], str(model), root / "store", draft=True)
            build_index(root / "store", root / "index")
            start = time.perf_counter()
            try:
                found = find_duplicates(root / "index", threshold="auto")
            except MsfkitError as e:
                print(f"| {spec} | auto: none | - | - | {time.perf_counter() - start:.1f} | {e} |")
            else:
                hit, copies, wrong = score(found.groups, expected)
                cal = found.calibration
                print(f"| {spec} | auto: {cal.threshold:.6f} | {hit}/{copies} | {wrong} | "
                      f"{time.perf_counter() - start:.1f} | {cal.explain()} |")  # fmt: skip
            hit, copies, wrong = score(dedup(root / "index", threshold=0.95), expected)
            print(f"| {spec} | fixed: 0.95 | {hit}/{copies} | {wrong} | - | the default |")


if __name__ == "__main__":
    main()
