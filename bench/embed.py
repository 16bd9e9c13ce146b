"""Benchmark `msfkit embed` against a naive loop, the model alone and the CPU's matmul limit, in one run.

    .venv/bin/python bench/embed.py                      # CPU: 300 photos at 1-12 MP, ResNet50 at 224
    .venv/bin/python bench/embed.py --images 1000 --min-mp 0.15 --max-mp 0.2   # ImageNet-size JPEGs
    .venv/bin/python bench/embed.py --device cuda --images 2000 --batch-size 256 --gpu-decode

The photos are the bundled ones resaved at the sizes asked for (cached in data/bench/). The model
is a ResNet50 with random weights (seed 0): speed does not depend on the weights. The first lines name
the CPU and its bf16 flags, and the matmul limit measured in the same run (a square matmul per
precision, torch's threads): the model-only rows say what fraction of it they reach, counting the
model's FLOPs per image (torch's FLOP counter). Measured, each after one warm-up batch or run:

- naive: one process, PIL open -> Encoder.transform() (full decode, torchvision) -> batch -> model, fp32
- model only: random uint8 crops through `msfkit.embedding.forward.Forward` per precision, eager and
  (CPU) compiled: torch.compile with inductor freezing, what msfkit runs for a job of
  COMPILE_MIN_BATCHES batches or more; the compile's own seconds (first call) are printed apart
- msfkit embed: `msfkit.embedding.embed` after a tiny warm-up run (parallel decoding workers,
  channels_last), fp32 and bf16, compiling as `--compiled` says (auto: as `msfkit embed` would);
  its time includes the compile (from the persistent cache when warm); "steady" is the rate past
  start-up: (time for all - time for the first half, compiled alike) over the second half
- msfkit embed, whole process: the installed `msfkit embed` command run as a user runs it, start-up,
  import and compile included, against the naive loop's time plus its own start-up
- gpu-decode (optional): files decoded by nvJPEG in batches, resized on the GPU; not the msfkit
  pipeline (its pixels differ from Pillow's), only what GPU decoding could give
and fidelity: bf16 against fp32 (mean cosine, overlap of each image's 10 nearest neighbours), and
msfkit fp32 against the naive loop.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from msfkit.embedding import EmbedOptions, embed  # noqa: E402
from msfkit.embedding.forward import Forward  # noqa: E402
from msfkit.models import Encoder, EncoderConfig  # noqa: E402
from msfkit.models.runtime import cpu_flags_line  # noqa: E402
from msfkit.store import open_store  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


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


def ceiling(
    encoder: Encoder, n: int, batch_size: int, precision: str, device: torch.device, compiled: bool
) -> tuple[float, float]:
    """(seconds for n random uint8 crops through the model as msfkit runs it, seconds of the first
    call: the compile, for the compiled path)."""
    encoder.eval().to(device, memory_format=torch.channels_last)
    forward = Forward(encoder, precision, batch_size, compiled=compiled)
    size = encoder.config.image_size
    x = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    start = time.perf_counter()
    forward(x)  # warm-up (and compile)
    sync(device)
    first = time.perf_counter() - start
    if compiled and not forward.compiled:
        sys.exit("the compiled path fell back to eager: see the line above")
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        forward(x[: min(batch_size, n - i)])
    sync(device)
    return time.perf_counter() - start, first


def matmul_limit(precision: str, device: torch.device, n: int = 4096, seconds: float = 3.0) -> float:
    """GFLOP/s of an n x n matmul in `precision` with torch's threads: the roof the model runs under."""
    a, b = (torch.randn(n, n, device=device).to(DTYPES[precision]) for _ in range(2))
    a @ b  # warm-up
    sync(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        sync(device)
        runs += 1
    return 2 * n**3 * runs / (time.perf_counter() - start) / 1e9


def model_gflop(encoder: Encoder) -> float:
    """FLOPs of one image through the backbone (a multiply-add counts 2), in GFLOP."""
    size = encoder.config.image_size
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        encoder.backbone.cpu()(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def run_msfkit(encoder, paths: list[Path], precision: str, args) -> tuple[float, float, np.ndarray]:
    """Seconds of `msfkit.embedding.embed` over all the photos and over their first half (after a tiny
    warm-up run; both compile alike, so their difference is the steady state), and the vectors."""
    choice = {"auto": None, "yes": True, "no": False}[args.compiled]
    compiled = EmbedOptions(compiled=choice).use_compiled(-(-len(paths) // (args.batch_size or 32)))
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        quick = EmbedOptions(precision=precision, device=args.device, workers=0)
        embed([str(p) for p in paths[:2]], encoder, Path(tmp) / "w", quick)
        for i, part in enumerate((paths[: len(paths) // 2], paths)):
            opts = EmbedOptions(precision=precision, device=args.device, draft=args.draft, compiled=compiled)
            opts.batch_size, opts.workers = args.batch_size, args.workers
            start = time.perf_counter()
            embed([str(p) for p in part], encoder, Path(tmp) / f"s{i}", opts)
            seconds.append(time.perf_counter() - start)
        return seconds[1], seconds[0], np.array(open_store(Path(tmp) / "s1").vectors)


def run_cli(encoder: Encoder, cache: Path, precision: str, args) -> float:
    """Seconds of the installed `msfkit embed` over the photos, start-up and compile included."""
    with tempfile.TemporaryDirectory() as tmp:
        model = encoder.save_pretrained(Path(tmp) / "model")
        command = [str(Path(sys.executable).with_name("msfkit")), "embed", str(cache), "-m", str(model)]
        command += ["-o", str(Path(tmp) / "store"), "--precision", precision, "--device", args.device, "-q"]
        command += ["--draft"] if args.draft else []
        for option, value in (("--batch-size", args.batch_size), ("--workers", args.workers)):
            command += [option, str(value)] if value is not None else []
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def startup_seconds() -> float:
    """Seconds for a fresh interpreter to import torch, torchvision and PIL: the naive loop's start-up."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, torchvision, PIL.Image"], check=True)
    return time.perf_counter() - start


def gpu_decode(encoder: Encoder, paths: list[Path], batch_size: int, workers: int, precision: str) -> float:
    """Files read by DataLoader workers, decoded by nvJPEG on the GPU, resized and cropped there."""
    from torchvision.io import decode_jpeg
    from torchvision.transforms.v2 import functional as TF

    class Raw(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return torch.frombuffer(bytearray(paths[i].read_bytes()), dtype=torch.uint8)

    c, prep = encoder.config, encoder.preprocess
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
    ap.add_argument("--draft", action="store_true", help="msfkit decodes JPEGs in draft mode (`--draft`)")
    ap.add_argument("--compiled", choices=["auto", "yes", "no"], default="auto", help="msfkit embed's model")
    ap.add_argument("--no-cli", action="store_true", help="skip the whole-process `msfkit embed` runs")
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
    gflop = model_gflop(encoder)
    print(f"{cpu_flags_line()}; torch threads {torch.get_num_threads()}")
    model = f"{args.arch} at {size} ({gflop:.2f} GFLOP an image)"
    print(f"{n} JPEGs, mean {mp:.2f} MP, {model}, {args.device}, torch {torch.__version__}")
    limits = {p: matmul_limit(p, device) for p in ("fp32", "bf16")}
    said = (f"{p} {g:,.0f} GFLOP/s ({g / gflop:,.0f} images/s)" for p, g in limits.items())
    print("matmul limit: " + ", ".join(said))

    naive_s, naive_vecs = naive(encoder, paths, args.batch_size or 32, device)
    rows = [("naive loop (fp32)", naive_s, None, "")]
    vecs, cli = {}, {}
    batch = args.batch_size or (256 if device.type == "cuda" else 32)
    n_ceiling = min(n, 4 * batch)  # a rate: fewer images will do
    for precision in ("fp32", "bf16"):
        ceiling_s = None
        for compiled in (False, True) if device.type == "cpu" else (False,):
            seconds, first = ceiling(encoder, n_ceiling, batch, precision, device, compiled)
            ceiling_s = seconds * n / n_ceiling
            note = f"{n * gflop / ceiling_s / limits[precision]:.0%} of the {precision} matmul limit"
            note += f"; compile {first:.1f} s" if compiled else ""
            name = f"model only, {'compiled' if compiled else 'eager'} ({precision})"
            rows.append((name, ceiling_s, None, note))
        seconds, half, vecs[precision] = run_msfkit(encoder, paths, precision, args)
        rows.append((f"msfkit embed ({precision})", seconds, None, "compile included"))
        steady = (seconds - half) * n / (n - n // 2)  # the second half's rate, for all n
        rows.append((f"msfkit embed, steady ({precision})", steady, ceiling_s, "all - first half"))
        if not args.no_cli:
            cli[precision] = run_cli(encoder, cache, precision, args)
    if args.gpu_decode:
        seconds = gpu_decode(encoder, paths, args.batch_size or 256, 8, "bf16")
        rows.append(("nvJPEG decode + model (bf16)", seconds, None, ""))

    print(f"\n{'':34}{'images/s':>10}{'x naive':>9}{'of ceiling':>12}")
    for name, seconds, ceil, note in rows:
        of_ceiling = f"{ceil / seconds:>11.0%}" if ceil else ""
        print(f"{name:34}{n / seconds:>10.1f}{naive_s / seconds:>9.2f}{of_ceiling:>12}  {note}")
    if cli:
        naive_whole = naive_s + startup_seconds()
        print(f"\nwhole process: naive loop {naive_whole:.1f} s (its run + an interpreter importing torch)")
        for precision, s in cli.items():
            print(f"msfkit embed --precision {precision}: {s:.1f} s, {naive_whole / s:.2f}x naive")
    cos = float(np.mean(np.sum(vecs["bf16"] * vecs["fp32"], axis=1)))
    overlap = knn_overlap(vecs["bf16"], vecs["fp32"])
    print(f"\nbf16 vs fp32: mean cosine {cos:.4f}, 10-NN overlap {overlap:.3f}")
    cos_naive = float(np.mean(np.sum(vecs["fp32"] * naive_vecs, axis=1)))
    overlap = knn_overlap(vecs["fp32"], naive_vecs)
    print(f"msfkit fp32 vs naive (full decode): mean cosine {cos_naive:.4f}, 10-NN {overlap:.3f}")


if __name__ == "__main__":
    main()
