"""Ray's overhead on one machine: `msfkit embed --engine ray` (a local Ray) against the plain run,
over the same JPEG folder, in alternating pairs.

    .venv/bin/python bench/ray_embed.py                                 # 1,000 JPEGs at 1-12 MP, 3 pairs
    .venv/bin/python bench/ray_embed.py --images 20 --arch resnet18 --image-size 64 --pairs 1   # smoke
    .venv/bin/python bench/ray_embed.py --photos my/jpegs --address auto --json out.json

Photos: `--photos FOLDER`, or the bundled photos resaved at `--min-mp`-`--max-mp` megapixels
(bench/embed.py's, cached in data/bench/embed-<n>-<min>-<max>mp). The model is a ResNet (random
weights, seed 0; speed does not depend on them). Ray is started once before the pairs (a local one
with every core, or the cluster at `--address`), its start-up reported apart: a Ray run's time is
what `msfkit embed --engine ray` costs on a running cluster (workers started, the model sent to each,
shards embedded and committed). Each pair runs both into fresh stores, the order alternating
(plain first in pairs 1, 3, ...), and checks that both stores hold the same vectors. Reported:
median and min-max wall seconds of each, and the Ray run's median over the plain run's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.embed import make_photos  # noqa: E402
from msfkit.embedding import EmbedOptions, StoreOptions, embed  # noqa: E402
from msfkit.models import Encoder, EncoderConfig  # noqa: E402
from msfkit.store import open_store  # noqa: E402


def timed_run(encoder: Encoder, photos: Path, out: Path, engine: str, args) -> float:
    """Wall seconds of one `embed` run into the new store `out`."""
    opts = EmbedOptions(batch_size=args.batch_size, workers=args.workers)
    store = StoreOptions(shard_rows=args.shard_rows, engine=engine, address=args.address)
    start = time.perf_counter()
    summary = embed([photos], encoder, out, opts, store)
    seconds = time.perf_counter() - start
    assert summary.embedded + summary.failed > 0, f"{photos}: no images"
    return seconds


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, help="a JPEG folder [default: resaved bundled photos]")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--min-mp", type=float, default=1.0)
    ap.add_argument("--max-mp", type=float, default=12.0)
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--shard-rows", type=int, default=64, help="files per store shard (a Ray task each)")
    ap.add_argument("--batch-size", type=int, help="msfkit's default when not given")
    ap.add_argument("--workers", type=int, help="decoding processes (per Ray worker); msfkit's default")
    ap.add_argument("--address", help="a running Ray cluster (auto, HOST:PORT) [default: a new local one]")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    import ray

    photos = args.photos
    if photos is None:
        photos = REPO / "data" / "bench" / f"embed-{args.images}-{args.min_mp:g}-{args.max_mp:g}mp"
        make_photos(args.images, args.min_mp, args.max_mp, photos)
    torch.manual_seed(0)
    size = args.image_size
    encoder = Encoder(EncoderConfig(arch=args.arch, image_size=size, resize=round(size * 256 / 224)))
    start = time.perf_counter()
    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - start
    cpus = int(ray.cluster_resources().get("CPU", 0))
    n = sum(1 for _ in photos.rglob("*.jpg"))
    print(f"{n} JPEGs in {photos}, {args.arch} at {size}, {os.cpu_count()} cores here, Ray: {cpus} CPUs")
    print(f"Ray start-up: {ray_start:.1f} s (once, not in the runs)")
    seconds: dict[str, list[float]] = {"plain": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            order = ("plain", "ray") if pair % 2 == 0 else ("ray", "plain")
            for engine in order:
                out = Path(tmp) / f"{engine}-{pair}"
                seconds[engine].append(
                    timed_run(encoder, photos, out, "local" if engine == "plain" else "ray", args)
                )
                print(f"pair {pair + 1}: {engine:5} {seconds[engine][-1]:7.2f} s", flush=True)
            a, b = (open_store(Path(tmp) / f"{e}-{pair}").vectors for e in ("plain", "ray"))
            assert np.array_equal(np.asarray(a), np.asarray(b)), "the Ray store differs from the plain one"
    ray.shutdown()
    result = {engine: spread(values) for engine, values in seconds.items()}
    ratio = result["ray"]["median"] / result["plain"]["median"]
    for engine, s in result.items():
        rate, low, high = n / s["median"], s["min"], s["max"]
        print(f"{engine:5}: median {s['median']:.2f} s (min {low:.2f}, max {high:.2f}), {rate:.1f} img/s")
    print(f"ray / plain (medians): {ratio:.3f}")
    if args.json:
        info = {"images": n, "arch": args.arch, "image_size": size, "pairs": args.pairs, "ray_cpus": cpus}
        args.json.write_text(
            json.dumps({**info, "ray_start_s": ray_start, **result, "ratio": ratio}, indent=1)
        )


if __name__ == "__main__":
    main()
