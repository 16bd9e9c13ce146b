"""`msfkit serve` latency at 100,000 x 512 rows: per query, against the CLI's cold `msfkit search`.

    .venv/bin/python bench/serve.py                  # about 5 minutes on 2 cores
    .venv/bin/python bench/serve.py --rounds 3 --rows 100000

Data: 100,000 x 512 unit vectors in clouds around 2,000 random centres (bench/search.py's
generator), written as a store of a real model folder (ResNet18, 224 px, random init: what
decides the cost of a forward pass is the architecture, not the weights), indexed with `msfkit
index` (auto, as a user runs it). The server is the installed `msfkit serve INDEX --port 0`.

Rounds alternate baseline and candidate (>= 3): the baseline is the CLI answering one query cold
(`msfkit search INDEX STORE:ROW` and `msfkit search INDEX photo.jpg`: interpreter, imports, index
and model load, one search); the candidate is the running server answering `--queries` store-row
queries (GET /api/search?row=R) and `--uploads` uploaded-photo queries (POST /api/search), one at
a time, over HTTP (httpx, keep-alive). Per round: p50 and p95 of each; reported: the median over
rounds and the spread (min-max). Model forward: `Encoder.embed` of the same photo in this process.
Goals: store-row p50 < 20 ms; upload p50 < model forward + 20 ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _bench_search():
    spec = importlib.util.spec_from_file_location("bench_search", ROOT / "bench" / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(work: Path, rows: int) -> tuple[Path, Path, Path]:
    """(index, store, model) folders: `rows` x 512 clustered vectors stored as the model's."""
    from msfkit.models import Encoder, EncoderConfig
    from msfkit.store.format import read_manifest, write_manifest

    search = _bench_search()
    model = work / "model"
    Encoder(EncoderConfig(arch="resnet18")).save_pretrained(model)
    encoder = Encoder.from_pretrained(model)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, 512)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    store = work / "store"
    search.write_store(store, search.clouds(centres, rows, seed=1))
    manifest = read_manifest(store)
    manifest["model"] = {"name": str(model), "revision": None, "fingerprint": encoder.fingerprint}
    manifest["model"]["config"] = {}
    write_manifest(store, manifest)
    index = work / "index"
    subprocess.run([*_msfkit(), "index", str(store), "-o", str(index)], check=True, capture_output=True)
    return index, store, model


def _msfkit() -> list[str]:
    script = Path(sys.executable).parent / "msfkit"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "msfkit.cli"]


def cold_cli(index: Path, query: str) -> float:
    t = time.perf_counter()
    subprocess.run([*_msfkit(), "search", str(index), query, "-k", "10"], check=True, capture_output=True)
    return time.perf_counter() - t


def forward_ms(model: Path, photo: Path, n: int) -> float:
    from PIL import Image

    from msfkit.models import Encoder

    encoder = Encoder.from_pretrained(model)
    image = Image.open(photo).convert("RGB")
    encoder.embed(image)  # warm-up
    times = []
    for _ in range(n):
        t = time.perf_counter()
        encoder.embed(image)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def serve_round(client, rows: int, photo: Path, args) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(len(photo.name) + int(time.time()))
    row_ms, upload_ms = [], []
    data = photo.read_bytes()
    for row in rng.integers(0, rows, args.queries):
        t = time.perf_counter()
        r = client.get("/api/search", params={"row": int(row), "limit": 10})
        row_ms.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    for _ in range(args.uploads):
        t = time.perf_counter()
        r = client.post("/api/search", params={"limit": 10}, files={"image": (photo.name, data)})
        upload_ms.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return {"row": percentiles(row_ms), "upload": percentiles(upload_ms)}


def summary(values: list[float], unit: str = "ms", scale: float = 1.0) -> str:
    v = [x * scale for x in values]
    return f"{statistics.median(v):8.1f} {unit} (spread {min(v):.1f}-{max(v):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200, help="store-row queries per round")
    parser.add_argument("--uploads", type=int, default=30, help="uploaded-image queries per round")
    args = parser.parse_args()
    import httpx

    import msfkit
    from tests.msfkit.serve.server import Server, server_env

    photo = sorted((ROOT / "data" / "photos").glob("*.jpg"))[0]
    with tempfile.TemporaryDirectory(prefix="msfkit-bench-serve-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        index, store, model = build(work, args.rows)
        built = time.perf_counter() - t
        info = msfkit.open_index(index).info
        forward = forward_ms(model, photo, 20)
        cli_row, cli_image, rounds = [], [], []
        env = server_env(work / "cache", work / "hf")
        t = time.perf_counter()
        with Server(index, env) as server, httpx.Client(base_url=server.url, timeout=120) as client:
            startup = time.perf_counter() - t
            serve_round(client, args.rows, photo, argparse.Namespace(queries=5, uploads=2))  # warm-up
            for _ in range(args.rounds):  # baseline, candidate, baseline, candidate, ...
                cli_row.append(cold_cli(index, f"{store}:{np.random.default_rng().integers(args.rows)}"))
                cli_image.append(cold_cli(index, str(photo)))
                rounds.append(serve_round(client, args.rows, photo, args))
    import faiss
    import torch

    print(f"msfkit serve latency, {args.rows:,} x 512, index {info['factory']} {info['search_params']}")
    print(f"faiss {faiss.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; data + "
          f"index built in {built:.0f} s; server up (URL printed) in {startup:.1f} s")  # fmt: skip
    print(f"{args.rounds} rounds; per round {args.queries} row queries, {args.uploads} uploads of "
          f"{photo.name} ({photo.stat().st_size // 1024} KiB); median over rounds (spread: min-max)")
    print(f"  model forward (Encoder.embed, in process)   {forward:8.1f} ms")
    print(f"  server  store-row query  p50  {summary([r['row'][0] for r in rounds])}")
    print(f"  server  store-row query  p95  {summary([r['row'][1] for r in rounds])}")
    print(f"  server  uploaded image   p50  {summary([r['upload'][0] for r in rounds])}")
    print(f"  server  uploaded image   p95  {summary([r['upload'][1] for r in rounds])}")
    print(f"  CLI cold msfkit search STORE:ROW  {summary(cli_row, 's')}")
    print(f"  CLI cold msfkit search photo.jpg  {summary(cli_image, 's')}")
    row_p50 = statistics.median(r["row"][0] for r in rounds)
    up_p50 = statistics.median(r["upload"][0] for r in rounds)
    print(f"goal store-row p50 < 20 ms: {row_p50:.1f} ms, {'met' if row_p50 < 20 else 'NOT met'}")
    print(f"goal upload p50 < forward + 20 ms = {forward + 20:.1f} ms: {up_p50:.1f} ms, "
          f"{'met' if up_p50 < forward + 20 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
