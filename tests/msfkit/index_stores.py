"""Embedding stores of chosen vectors for the index, search and dedup tests (written with msfkit.store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from msfkit.store.format import Manifest, ModelRecord, write_manifest
from msfkit.store.shards import shard_info
from msfkit.store.writer import merge_errors, write_shard


def clustered_vectors(n: int, d: int, clusters: int, seed: int, spread: float = 0.6) -> np.ndarray:
    """`n` unit vectors around `clusters` random centres (float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d))
    x = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_vector_store(
    root: Path,
    vectors: np.ndarray,
    model: dict | None = None,
    source_root: Path | None = None,
    shard_rows: int = 1000,
    prefix: str = "img",
    labels: list[str | None] | None = None,
) -> Path:
    """A complete store at `root` holding `vectors` for the files `prefix`_00000.jpg, ... (not created),
    labelled with `labels` (none by default)."""
    root = Path(root)
    record = ModelRecord(
        **{"name": None, "revision": None, "fingerprint": "synthetic", "config": {}, **(model or {})}
    )
    n = len(vectors)
    paths = [f"{prefix}_{i:05d}.jpg" for i in range(n)]
    shards = []
    for k, start in enumerate(range(0, n, shard_rows)):
        end = min(n, start + shard_rows)
        meta = {
            "path": paths[start:end],
            "label": [None] * (end - start) if labels is None else list(labels[start:end]),
            "width": [32] * (end - start),
            "height": [32] * (end - start),
            "bytes": [100] * (end - start),
            "mtime": [0.0] * (end - start),
        }
        write_shard(root, k, vectors[start:end], meta, [])
        shards.append(shard_info(root, k))
    merge_errors(root, range(len(shards)))
    source = str(source_root or root / "images")
    counts = (n, 0)
    manifest = Manifest(record, int(vectors.shape[1]), source, counts=counts, shards=shards, complete=True)
    write_manifest(root, manifest)
    return root


# -- real photos, a real model, planted duplicates ------------------------------------------------

PLANTED = ("q40", "half", "crop")  # re-encoded at JPEG quality 40, resized to half, 2% cropped per side


def calibrated_model(photo_paths, out: Path) -> Path:
    """A ResNet18 (cifar stem, 32 px, fixed seed) whose batch-norm statistics are those of the photos.

    With random weights and default statistics every photo embeds almost alike (cosine > 0.99);
    data statistics make distinct photos distinct while copies of one photo stay close.
    """
    import torch
    from PIL import Image

    from msfkit.models import Encoder, EncoderConfig

    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32))
    tf = enc.transform()
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in photo_paths])
    for m in enc.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the one pass
    enc.train()
    with torch.no_grad():
        enc(x)
    enc.eval().save_pretrained(out)
    return out


def photos_with_copies(photo_paths, out: Path, originals: int = 12, copied: int = 3) -> Path:
    """`originals` photos in `out`, plus the PLANTED copies of the first `copied` of them."""
    import shutil

    from PIL import Image

    out.mkdir(parents=True)
    for p in photo_paths[:originals]:
        shutil.copy(p, out / p.name)
    for p in photo_paths[:copied]:
        im = Image.open(p).convert("RGB")
        w, h = im.size
        im.save(out / f"{p.stem}_q40.jpg", quality=40)
        im.resize((w // 2, h // 2)).save(out / f"{p.stem}_half.jpg", quality=95)
        im.crop((w // 50, h // 50, w - w // 50, h - h // 50)).save(out / f"{p.stem}_crop.jpg", quality=95)
    return out


_BUILT: dict[str, tuple[Path, Path, Path, Path]] = {}


def photo_index_folders(photo_paths, tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    """(index, store, photos, model) folders: 12 photos + 9 planted copies, Flat; built once a session."""
    if "photos" not in _BUILT:
        _BUILT["photos"] = _build_photo_index(photo_paths, tmp_path_factory.mktemp("photo_index"))
    return _BUILT["photos"]


def _build_photo_index(photo_paths, root: Path) -> tuple[Path, Path, Path, Path]:
    from msfkit.index import build_index
    from tests.runs import embed

    model = calibrated_model(photo_paths, root / "model")
    photos = photos_with_copies(photo_paths, root / "photos")
    embed([photos], str(model), root / "store", draft=True)  # as the demo: camera photos, draft decoding
    build_index(root / "store", root / "index")
    return root / "index", root / "store", photos, model
