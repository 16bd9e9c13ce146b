"""Benchmark `msfkit embed` against a naive loop and a model-only ceiling, in one run.

    .venv/bin/python bench/embed.py                      # CPU: 300 photos at 1-12 MP, ResNet50 at 224
    .venv/bin/python bench/embed.py --device cuda --images 2000 --batch-size 256 --gpu-decode

The photos are the bundled ones (data/photos) resaved at realistic sizes, cached in
data/bench/embed-<n>-<min>-<max>mp. The model is a ResNet50 with random weights (seed 0): no
pretrained weights exist offline, and speed does not depend on the weights. Measured, each after
one warm-up batch:

- naive: one process, PIL open -> Encoder.transform() (full decode, torchvision) -> batch -> model, fp32
- ceiling: random crops through the model as msfkit runs it, per precision: on CPU the frozen
  TorchScript graph msfkit uses for collections (the eager model is timed too, for reference)
- msfkit: `msfkit.embedding.embed` (parallel decoding workers, JPEG draft as `--draft`, channels_last),
  fp32 and bf16
- gpu-decode (optional): files read by workers, decoded by nvJPEG in batches, resized on the GPU;
  not the msfkit pipeline (its pixels differ from Pillow's), only what GPU decoding could give

and fidelity: bf16 against fp32 (mean cosine, overlap of each image's 10 nearest neighbours), and
msfkit fp32 (draft decoding) against the naive loop's full decodes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from msfkit.embedding import EmbedOptions, embed  # noqa: E402
from msfkit.embedding.forward import Forward  # noqa: E402
from msfkit.models import Encoder, EncoderConfig  # noqa: E402
from msfkit.store import open_store  # noqa: E402


def make_photos(n: int, min_mp: float, max_mp: float, cache: Path) -> list[Path]:
    """n JPEGs resaved from the bundled photos at sizes uniform in [min_mp, max_mp] megapixels."""
    done = cache / "done.json"
    if done.is_file() and json.loads(done.read_text()) == {"n": n, "min_mp": min_mp, "max_mp": max_mp}:
        return sorted(cache.glob("*.jpg"))
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    sources = sorted((REPO / "data" / "photos").glob("*.jpg"))
    rng = np.random.default_rng(0)
    for i in range(n):
        src = Image.open(sources[i % len(sources)]).convert("RGB")
        # a random crop and flip so the copies of one photo are near-duplicates, not identical
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.8, 1.0)), int(h * rng.uniform(0.8, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = src.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        scale = (rng.uniform(min_mp, max_mp) * 1e6 / (cw * ch)) ** 0.5
        img = img.resize((round(cw * scale), round(ch * scale)), Image.Resampling.BICUBIC)
        img.save(cache / f"{i:05d}.jpg", quality=90)
        print(f"\rmaking photos {i + 1}/{n}", end="", file=sys.stderr)
    print(file=sys.stderr)
    done.write_text(json.dumps({"n": n, "min_mp": min_mp, "max_mp": max_mp}))
    return sorted(cache.glob("*.jpg"))


@torch.inference_mode()
def naive(
    encoder: Encoder, paths: list[Path], batch_size: int, device: torch.device
) -> tuple[float, np.ndarray]:
    """One process: open, transform, batch, model; fp32, contiguous memory format."""
    model = encoder.eval().to(device, memory_format=torch.contiguous_format)
    tf = encoder.transform()
    model(torch.stack([tf(Image.open(p)) for p in paths[:batch_size]]).to(device))  # warm-up
    sync(device)
    start, out = time.perf_counter(), []
    for i in range(0, len(paths), batch_size):
        x = torch.stack([tf(Image.open(p)) for p in paths[i : i + batch_size]]).to(device)
        out.append(torch.nn.functional.normalize(model(x).float(), dim=1).cpu())
    sync(device)
    return time.perf_counter() - start, torch.cat(out).numpy()


@torch.inference_mode()
def ceiling(
    encoder: Encoder, n: int, batch_size: int, precision: str, device: torch.device, frozen: bool
) -> float:
    """Seconds for n random uint8 crops through the model as msfkit runs it (normalise, model, normalise)."""
    encoder.eval().to(device, memory_format=torch.channels_last)
    forward = Forward(encoder, precision, frozen=frozen)
    size = encoder.config.image_size
    x = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    forward(x)  # warm-up
    sync(device)
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        forward(x[: min(batch_size, n - i)])
    sync(device)
    return time.perf_counter() - start


def run_msfkit(
    encoder, cache: Path, precision: str, device: str, batch_size, workers
) -> tuple[float, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: a tiny run, so the timed run does not pay for first-call set-up
        warm = Path(tmp) / "warm"
        warm.mkdir()
        for p in sorted(cache.glob("*.jpg"))[:2]:
            shutil.copy(p, warm / p.name)
        embed([warm], encoder, Path(tmp) / "w", EmbedOptions(precision=precision, device=device, workers=0))
        start = time.perf_counter()
        opts = EmbedOptions(precision=precision, device=device, batch_size=batch_size, workers=workers)
        opts.draft = True
        embed([cache], encoder, Path(tmp) / "s", opts)
        seconds = time.perf_counter() - start
        return seconds, np.array(open_store(Path(tmp) / "s").vectors)


def gpu_decode(encoder: Encoder, paths: list[Path], batch_size: int, workers: int, precision: str) -> float:
    """Files read by DataLoader workers, decoded by nvJPEG on the GPU, resized and cropped there."""
    from torchvision.io import decode_jpeg
    from torchvision.transforms.v2 import functional as TF

    class Raw(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return torch.frombuffer(bytearray(paths[i].read_bytes()), dtype=torch.uint8)

    c = encoder.config
    prep = encoder.preprocess
    model = encoder.eval().to("cuda", memory_format=torch.channels_last)
    loader = torch.utils.data.DataLoader(Raw(), batch_size=batch_size, num_workers=workers, collate_fn=list)
    start = time.perf_counter()
    with torch.inference_mode():
        for raw in loader:
            images = decode_jpeg(raw, device="cuda")
            crops = [TF.center_crop(TF.resize(im, c.resize, antialias=True), c.image_size) for im in images]
            model.embed_batch(prep.normalize(torch.stack(crops)), precision).cpu()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each row's k nearest neighbours (itself excluded) that a and b agree on."""

    def neighbours(x):
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :k]

    na, nb = neighbours(a), neighbours(b)
    return float(np.mean([len(set(r) & set(s)) / k for r, s in zip(na, nb, strict=True)]))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--min-mp", type=float, default=1.0)
    ap.add_argument("--max-mp", type=float, default=12.0)
    ap.add_argument("--cache", type=Path, help="photo folder [default: data/bench/embed-<n>-<min>-<max>mp]")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch-size", type=int, help="msfkit's default when not given; the naive loop uses 32")
    ap.add_argument("--workers", type=int, help="msfkit's default when not given")
    ap.add_argument("--gpu-decode", action="store_true", help="also time nvJPEG decoding on the GPU")
    args = ap.parse_args()

    cache = args.cache or REPO / "data" / "bench" / f"embed-{args.images}-{args.min_mp:g}-{args.max_mp:g}mp"
    paths = make_photos(args.images, args.min_mp, args.max_mp, cache)
    torch.manual_seed(0)
    size = args.image_size
    encoder = Encoder(EncoderConfig(arch=args.arch, image_size=size, resize=round(size * 256 / 224)))
    device = torch.device(args.device)
    n = len(paths)
    mp = np.mean([np.prod(Image.open(p).size) / 1e6 for p in paths])
    threads = torch.get_num_threads()
    print(f"{n} JPEGs, mean {mp:.1f} MP, {args.arch} at {size}, {args.device}, torch threads {threads}")

    naive_s, naive_vecs = naive(encoder, paths, args.batch_size or 32, device)
    rows = [("naive loop (fp32)", naive_s, None)]
    vecs = {}
    batch = args.batch_size or (256 if device.type == "cuda" else 32)
    n_ceiling = min(n, 4 * batch)  # a rate: fewer images will do
    for precision in ("fp32", "bf16"):
        # on CPU msfkit runs a frozen graph for collections this size; the eager model is timed for reference
        eager_s = ceiling(encoder, n_ceiling, batch, precision, device, frozen=False) * n / n_ceiling
        rows.append((f"model only, eager ({precision})", eager_s, None))
        ceiling_s = eager_s
        if device.type == "cpu":
            ceiling_s = ceiling(encoder, n_ceiling, batch, precision, device, frozen=True) * n / n_ceiling
            rows.append((f"model only, frozen ({precision})", ceiling_s, None))
        run = run_msfkit(encoder, cache, precision, args.device, args.batch_size, args.workers)
        seconds, vecs[precision] = run
        rows.append((f"msfkit embed ({precision})", seconds, ceiling_s))
    if args.gpu_decode:
        rows.append(
            (
                "nvJPEG decode + model (bf16)",
                gpu_decode(encoder, paths, args.batch_size or 256, 8, "bf16"),
                None,
            )
        )

    print(f"\n{'':34}{'images/s':>10}{'x naive':>9}{'of ceiling':>12}")
    for name, seconds, ceil in rows:
        of_ceiling = f"{ceil / seconds:>11.0%}" if ceil else ""
        print(f"{name:34}{n / seconds:>10.1f}{naive_s / seconds:>9.2f}{of_ceiling:>12}")
    cos = float(np.mean(np.sum(vecs["bf16"] * vecs["fp32"], axis=1)))
    print(
        f"\nbf16 vs fp32: mean cosine {cos:.4f}, 10-NN overlap {knn_overlap(vecs['bf16'], vecs['fp32']):.3f}"
    )
    cos_draft = float(np.mean(np.sum(vecs["fp32"] * naive_vecs, axis=1)))
    overlap = knn_overlap(vecs["fp32"], naive_vecs)
    print(f"msfkit fp32 (draft) vs naive (full decode): mean cosine {cos_draft:.4f}, 10-NN {overlap:.3f}")


if __name__ == "__main__":
    main()
