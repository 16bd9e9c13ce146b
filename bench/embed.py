"""Benchmark `msfkit embed` against a naive loop, the model alone and the CPU's matmul limit, in
alternating rounds.

    .venv/bin/python bench/embed.py                      # CPU: 300 photos at 1-12 MP, ResNet50 at 224
    .venv/bin/python bench/embed.py --images 1000 --min-mp 0.15 --max-mp 0.2   # ImageNet-size JPEGs
    .venv/bin/python bench/embed.py --images 8 --rounds 1 --arch resnet18 --image-size 64 \
        --min-mp 0.05 --max-mp 0.1                       # a check that every row runs, in a minute
    .venv/bin/python bench/embed.py --device cuda --images 2000 --batch-size 256 --gpu-decode

The photos are the bundled ones resaved at the sizes asked for (cached in data/bench/); the model a
ResNet with random weights (seed 0) saved as a model folder (speed does not depend on the weights).
The rows, each run once a round (`--rounds`, default 3), the order reversed every other round:

- matmul limit: a square matmul per precision, torch's threads; the model-only rows give their share
  of it in the same round (FLOPs per image from torch's FLOP counter)
- naive loop: bench/naive_embed.py's loop (PIL open, torchvision transforms and model, fp32, batch
  32) in this process, after a warm-up batch
- model only: random uint8 crops through `msfkit.embedding.forward.Forward`, eager and (CPU) compiled
  as msfkit runs a job of COMPILE_MIN_BATCHES batches or more: the model's AOTInductor package,
  built once into msfkit's cache and loaded by every later Forward (a new one each round); the
  build and the loads timed apart
- msfkit embed: `msfkit.embedding.embed` over all the photos, the package's load included; "steady"
  is its rate past start-up: (all - the first half, run in the same round) over the second half
- whole process: bench/naive_embed.py as a process of its own against the installed `msfkit embed`
  as a user runs it, start-up, imports and the package's load included. Before the rounds, `msfkit
  embed` runs once per precision with an empty cache (MSFKIT_CACHE in a temporary folder), as a
  user's first run does, building the package (a job of COMPILE_MIN_BATCHES batches or more):
  reported apart; the rounds load it
- gpu-decode (optional): nvJPEG decoding and resizing on the GPU; not msfkit's pipeline (its pixels
  differ from Pillow's), only what GPU decoding could give

Each row: median and min-max over the rounds, and the median of its per-round ratios to the naive
loop (whole-process rows: to the naive process) of the same round (bench/measure.py). Then the
speed issue's goals, PASS or MISS, and fidelity: bf16 against fp32, msfkit fp32 against naive
(mean cosine, overlap of each image's 10 nearest neighbours).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.embed_report import fidelity, report  # noqa: E402
from bench.embed_rows import Job, msfkit_command, rows, whole_process  # noqa: E402
from bench.measure import alternate, gflop_of  # noqa: E402
from msfkit.embedding import EmbedOptions, embed  # noqa: E402
from msfkit.models import Encoder, EncoderConfig  # noqa: E402
from msfkit.models.runtime import PRECISIONS, cpu_flags_line  # noqa: E402


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
    ap.add_argument("--draft", action="store_true", help="msfkit decodes JPEGs in draft mode (`--draft`)")
    ap.add_argument("--compiled", choices=["auto", "yes", "no"], default="auto", help="msfkit embed's model")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of every row")
    ap.add_argument("--no-cli", action="store_true", help="skip the whole-process runs")
    ap.add_argument("--only-cli", action="store_true", help="only the whole-process runs (and the first run)")
    ap.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                    help="msfkit's precisions to time (all of them by default)")  # fmt: skip
    ap.add_argument("--gpu-decode", action="store_true", help="also time nvJPEG decoding on the GPU")
    args = ap.parse_args()

    folder = args.cache or REPO / "data" / "bench" / f"embed-{args.images}-{args.min_mp:g}-{args.max_mp:g}mp"
    paths = make_photos(args.images, args.min_mp, args.max_mp, folder)
    torch.manual_seed(0)
    size = args.image_size
    encoder = Encoder(EncoderConfig(arch=args.arch, image_size=size, resize=round(size * 256 / 224)))
    with torch.inference_mode():
        gflop = gflop_of(lambda: encoder.backbone(torch.zeros(1, 3, size, size)))
    mp = np.mean([np.prod(Image.open(p).size) / 1e6 for p in paths])
    if args.no_cli and args.only_cli:
        sys.exit("--no-cli and --only-cli leave nothing to time")
    print(f"{cpu_flags_line()}; torch threads {torch.get_num_threads()}; torch {torch.__version__}")
    model = f"{args.arch} at {size} ({gflop:.2f} GFLOP an image)"
    print(f"{len(paths)} JPEGs, mean {mp:.2f} MP, {model}, {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        job = Job(encoder, paths, folder, Path(tmp), args)
        encoder.save_pretrained(job.tmp / "model")
        # msfkit's cache (the compiled model's packages) in the temporary folder, for this process
        # and the commands it starts: empty for their first runs, as a new user's
        os.environ["MSFKIT_CACHE"] = str(job.tmp / "cache")
        cold = {}
        if not args.no_cli:
            for p in args.precisions:
                cold[p] = whole_process(job, f"first run ({p})", msfkit_command(job, p))()
        quick = EmbedOptions(device=args.device, workers=0)  # imports, first calls, decoding's warm-up
        embed([str(p) for p in paths[:2]], encoder, job.output(), quick)
        # every Forward (a model-only row, each embed) loads the package anew, as a new process would
        results = alternate(rows(job), args.rounds)
        report(job, results, cold, gflop)
        if {"fp32", "bf16", "naive"} <= set(job.vectors):
            fidelity(job.vectors)


if __name__ == "__main__":
    main()
