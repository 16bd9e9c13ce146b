"""What bench/curate.py builds: the planted collection (flipped labels, foreign images, leaked copies),
its stores and its exact index, in a temporary folder or a kept --work folder (bench/curate.py's
docstring says what each part holds).

    with work_folder(args.work) as tmp:
        flipped, foreign, copied = prepared(tmp, args, rng)   # built, or reused from a --work folder
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

import msfkit
from bench.curate_leaks import plant_leaks
from msfkit.data.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from msfkit.index import build_index

SKIMAGE = ("astronaut", "camera", "coins", "coffee", "chelsea", "horse", "moon", "page", "rocket", "text")


FOREIGN_KINDS = ("photos", "digits", "noise")  # the curation issue's three kinds of image that is no garment


def foreign_name(folder: str, j: int, kind: str) -> str:
    """The planted file of the `j`th foreign image, of `kind`, in class `folder`."""
    return f"{folder}/foreign_{j:03d}_{kind}.png"


def foreign_kind(name: str) -> str:
    """The kind of foreign image a `foreign_name` names."""
    return name.rsplit("_", 1)[-1].removesuffix(".png")


def foreign_images(
    count: int, photos: Path, rng: np.random.Generator, kinds: tuple[str, ...] = FOREIGN_KINDS
) -> list[tuple[str, Image.Image]]:
    """`count` grey 28 px images that are not clothes, (kind, image), an equal share of each of `kinds`
    (the first ones one more where `count` does not divide): photos (the photos folder, then
    scikit-image's images), digits (scikit-learn's bundled 8 px digits, scaled up), uniform noise."""
    import skimage.data
    from sklearn.datasets import load_digits

    out = []
    for i, kind in enumerate(kinds):
        n = count // len(kinds) + (i < count % len(kinds))
        if kind == "photos":
            found = [Image.open(p) for p in sorted(photos.glob("*.jpg"))]
            found += [Image.fromarray(getattr(skimage.data, name)()) for name in SKIMAGE]
        elif kind == "digits":
            digits = load_digits().images
            found = [
                Image.fromarray((digits[j] * 255 / 16).astype(np.uint8)) for j in rng.permutation(len(digits))
            ]
        elif kind == "noise":
            found = [Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)) for _ in range(n)]
        else:
            sys.exit(f"unknown kind of foreign image {kind!r}; expected some of {', '.join(FOREIGN_KINDS)}")
        out += [(kind, im.convert("L").resize((28, 28), Image.BILINEAR)) for im in found[:n]]
    return out


def build_collection(root: Path, args, rng: np.random.Generator) -> tuple[dict[str, str], set[str]]:
    """Write the collection under `root`; ({flipped file: its true class}, {foreign files}), as paths
    relative to `root`."""
    images, labels = load_fashion_mnist("train")
    per_class = args.images // len(FASHION_MNIST_CLASSES)
    rows = np.concatenate(
        [np.flatnonzero(labels == c)[:per_class] for c in range(len(FASHION_MNIST_CLASSES))]
    )
    flipped = set(rng.choice(rows, size=round(args.flip * len(rows)), replace=False).tolist())
    truth: dict[str, str] = {}
    for i in rows:
        true = FASHION_MNIST_CLASSES[labels[i]]
        given = true
        if i in flipped:
            given = FASHION_MNIST_CLASSES[(labels[i] + rng.integers(1, len(FASHION_MNIST_CLASSES))) % 10]
            truth[f"{given}/{i:05d}.png"] = true
        (root / given).mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(root / given / f"{i:05d}.png")
    foreign = set()
    kinds = tuple(args.foreign_kinds.split(","))
    for j, (kind, im) in enumerate(foreign_images(args.foreign, Path(args.photos), rng, kinds)):
        name = foreign_name(FASHION_MNIST_CLASSES[rng.integers(10)], j, kind)
        im.save(root / name)
        foreign.add(name)
    return truth, foreign


def model_folder(spec: str, collection: Path, out: Path) -> Path:
    """A model folder: `spec` itself, or `random:ARCH@SIZE` made here (see the module docstring)."""
    if not spec.startswith("random:"):
        return Path(spec)
    import torch

    from bench.calibrate import calibrate_batch_norm
    from msfkit.models import Encoder, EncoderConfig

    arch, _, size = spec.removeprefix("random:").partition("@")
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(arch=arch, stem="cifar", image_size=int(size or 32), resize=int(size or 32)))
    files = sorted(collection.glob("*/*.png"))
    sample = [files[i] for i in np.random.default_rng(0).choice(len(files), size=512, replace=False)]
    tf = enc.transform()
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in sample])
    calibrate_batch_norm(enc, x).save_pretrained(out)
    return out


def pixel_store(collection: Path, out: Path) -> Path:
    """A store of the raw pixels of every image of `collection` (see the module docstring)."""
    from msfkit.store.format import Manifest, ModelRecord, write_manifest
    from msfkit.store.shards import shard_info
    from msfkit.store.writer import merge_errors, write_shard

    files = sorted(collection.glob("*/*.png"))
    x = np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float32).ravel() / 255 for p in files])
    x -= x.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rel = [p.relative_to(collection).as_posix() for p in files]
    facts = [p.stat() for p in files]
    meta = {"path": rel, "label": [r.split("/")[0] for r in rel], "width": [28] * len(rel)}
    meta |= {
        "height": [28] * len(rel),
        "bytes": [f.st_size for f in facts],
        "mtime": [f.st_mtime for f in facts],
    }
    write_shard(out, 0, x, meta, [])
    merge_errors(out, [0])
    record = ModelRecord(name=None, revision=None, fingerprint="raw-pixels", config={})
    manifest = Manifest(
        record, x.shape[1], str(collection), counts=(len(rel), 0), shards=[shard_info(out, 0)]
    )
    write_manifest(out, dataclasses.replace(manifest, complete=True))
    return out


# what a --work folder holds
SHAPING = ("model", "images", "flip", "foreign", "foreign_kinds", "test", "leak", "photos")


@contextmanager
def work_folder(work: str | None) -> Iterator[Path]:
    """`work` (made if missing), kept after the run; or a temporary folder, removed after it."""
    if work:
        Path(work).mkdir(parents=True, exist_ok=True)
        yield Path(work)
        return
    with tempfile.TemporaryDirectory(prefix="msfkit-bench-curate-") as tmp:
        yield Path(tmp)


def prepared(tmp: Path, args, rng: np.random.Generator) -> tuple[dict[str, str], set[str], dict[str, str]]:
    """The collection, its stores and its exact index under `tmp`: built, or those a --work folder kept
    (its planted.json, written last, says they are whole); (flipped, foreign, copied), as `report`
    takes them."""
    record = tmp / "planted.json"
    shaping = {name: getattr(args, name) for name in SHAPING}
    if record.exists():
        kept = json.loads(record.read_text())
        if kept["args"] != shaping:
            sys.exit(
                f"{tmp} holds a collection built with {kept['args']}, not {shaping}: give another --work"
            )
        return kept["flipped"], set(kept["foreign"]), kept["copied"]
    if any(tmp.iterdir()):
        sys.exit(f"{tmp} holds an unfinished build (no planted.json): remove it, or use another --work")
    truth, foreign = build_collection(tmp / "images", args, rng)
    planted = {}
    if args.model == "pixels":
        pixel_store(tmp / "images", tmp / "store")
    else:
        planted = plant_leaks(tmp / "test", tmp / "images", args.test, args.leak, rng)
        model = model_folder(args.model, tmp / "images", tmp / "model")
        msfkit.embed([tmp / "images"], str(model), tmp / "store")
        msfkit.embed([tmp / "test"], str(model), tmp / "test-store")
    build_index(tmp / "store", tmp / "index", kind="flat", recall=1.0)
    kept = {"args": shaping, "flipped": truth, "foreign": sorted(foreign), "copied": planted}
    record.write_text(json.dumps(kept, indent=1))
    return truth, foreign, planted
