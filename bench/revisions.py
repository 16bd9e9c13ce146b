"""Is this tree slower than an earlier revision? Embedding and search timed for both, alternating.

    .venv/bin/python bench/revisions.py --baseline 0fcb137          # the commit before a refactor
    .venv/bin/python bench/revisions.py --baseline HEAD~3 --rounds 5

The baseline revision is built into a private folder (`pip install --no-deps --target`) and each
measurement runs in a fresh process, baseline and candidate (this working tree) in turn, `--rounds`
times; the table reports the median of each, the spread (min-max) and the candidate/baseline ratio
of the medians. Measured, with the same data for both:

- embed: `--photos` JPEGs at 1-4 MP through the library's embed function (draft decoding, fp32,
  ResNet18 at 224 px, random weights), end to end: listing, decoding, model, store writing.
- search: an exact (flat) index built over a store of `--vectors` random unit vectors (512-d),
  then 1,000 query vectors searched; index build and search timed separately.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time, tempfile
from pathlib import Path
import numpy as np
task, data, model_dir = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
try:  # this tree
    from msfkit.embedding import EmbedOptions, embed
    from msfkit.index import build_index, open_folder
    run_embed = lambda out: embed([data], model_dir, out, EmbedOptions(draft=True, workers=1))
    search = lambda folder, q: open_folder(folder).search_vectors(q, 10)
except ImportError:  # the layout before msfkit/ had rooms
    from msfkit.embed import embed
    from msfkit.index import build_index, load_index
    run_embed = lambda out: embed([data], model_dir, out, draft=True, workers=1, progress=False)
    search = lambda folder, q: load_index(folder).search(q, 10)
with tempfile.TemporaryDirectory() as tmp:
    if task == "embed":
        t = time.perf_counter(); run_embed(Path(tmp) / "store"); out = {"embed_s": time.perf_counter() - t}
    else:
        q = np.load(data / "queries.npy")
        t = time.perf_counter(); build_index(data / "store", Path(tmp) / "ix", kind="flat")
        build = time.perf_counter() - t
        t = time.perf_counter(); search(Path(tmp) / "ix", q)
        out = {"index_build_s": build, "search_s": time.perf_counter() - t}
print(json.dumps(out))
"""


def build_baseline(rev: str, work: Path) -> Path:
    src, site = work / "src", work / "site"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
         str(site), str(src)],
        check=True,
    )  # fmt: skip
    return site


def make_data(work: Path, photos: int, vectors: int) -> tuple[Path, Path, Path]:
    import numpy as np
    import torch
    from PIL import Image

    from msfkit.models import Encoder, EncoderConfig

    torch.manual_seed(0)
    model = work / "model"
    Encoder(EncoderConfig(arch="resnet18", image_size=224, resize=256)).save_pretrained(model)
    images = work / "photos"
    images.mkdir()
    sources = sorted((REPO / "data" / "photos").glob("*.jpg"))
    rng = np.random.default_rng(0)
    for i in range(photos):
        img = Image.open(sources[i % len(sources)]).convert("RGB")
        scale = (rng.uniform(1, 4) * 1e6 / (img.width * img.height)) ** 0.5
        img = img.resize((round(img.width * scale), round(img.height * scale)))
        img.save(images / f"{i:04d}.jpg", quality=90)
    vec_dir = work / "vectors"
    vec_dir.mkdir()
    sys.path.insert(0, str(REPO / "bench"))
    from search import write_store  # the search benchmark's store writer

    x = rng.standard_normal((vectors, 512)).astype(np.float32)
    write_store(vec_dir / "store", x / np.linalg.norm(x, axis=1, keepdims=True))
    q = rng.standard_normal((1000, 512)).astype(np.float32)
    np.save(vec_dir / "queries.npy", q / np.linalg.norm(q, axis=1, keepdims=True))
    return model, images, vec_dir


def measure(site: Path | None, task: str, data: Path, model: Path) -> dict[str, float]:
    env_path = [str(site)] if site else []
    code = f"import sys; sys.path[:0] = {env_path!r}\n" + WORKER
    cmd = [sys.executable, "-c", code, task, str(data), str(model)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="git revision to compare against")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--photos", type=int, default=96)
    ap.add_argument("--vectors", type=int, default=200_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="msfkit-revisions-"))
    try:
        site = build_baseline(args.baseline, work)
        model, photos, vectors = make_data(work, args.photos, args.vectors)
        results: dict[str, dict[str, list[float]]] = {"baseline": {}, "candidate": {}}
        for r in range(args.rounds):
            for who, where in (("baseline", site), ("candidate", None)):
                for task, data in (("embed", photos), ("search", vectors)):
                    for key, value in measure(where, task, data, model).items():
                        results[who].setdefault(key, []).append(value)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        print(f"baseline {args.baseline} vs this tree, {args.rounds} alternating rounds, seconds")
        print(f"{'':16}{'baseline':>10}{'(min-max)':>16}{'candidate':>11}{'(min-max)':>16}{'ratio':>8}")
        for key in results["baseline"]:
            b, c = results["baseline"][key], results["candidate"][key]
            mb, mc = statistics.median(b), statistics.median(c)
            print(f"{key:16}{mb:>10.3f}{f'{min(b):.3f}-{max(b):.3f}':>16}{mc:>11.3f}"
                  f"{f'{min(c):.3f}-{max(c):.3f}':>16}{mc / mb:>8.2f}")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
