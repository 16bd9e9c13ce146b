"""Search benchmark: the `auto` index against exact faiss Flat and numpy brute force.

    .venv/bin/python bench/search.py                 # both datasets, about 20 minutes on 2 cores
    .venv/bin/python bench/search.py --quick         # 100k x 512 and 20k x 2048, for a smoke run

Datasets (queries are 1,000 vectors drawn like the data but never indexed):
  1,000,000 x 512: clouds around 2,000 real Fashion-MNIST embeddings (a ResNet18 with random weights
                   and batch-norm statistics calibrated on Fashion-MNIST: no trained weights exist
                   offline), spread along a 32-dimensional subspace as real embeddings are, each
                   cloud as wide as the distance to the nearest other centre (clouds overlap).
  100,000 x 2048:  the same around 1,000 Fashion-MNIST embeddings of a ResNet50 made the same way.
Methods: exact faiss Flat; `auto`, the index `msfkit index` chooses (default --workload
interactive); `auto-batch`, the same with `--workload batch` (1M x 512 only: at 100k x 2048 auto is
HNSW, which the workload does not shape). Each index is built once in its own process (build time
and peak memory); then `--rounds` rounds in alternating order, each method loading and searching in
a fresh process (batch queries/s, median single-query latency, recall@10 against numpy brute force,
peak memory) so that one method's memory never counts for another. Reported: the median and min-max
over rounds, and the median of each round's ratio to Flat.
Peak memory: VmHWM, the peak resident set (like ru_maxrss, but not inherited from the forking
parent; it includes pages of the memory-mapped store files) and the peak anonymous RSS sampled
every 20 ms (what the method itself allocated).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # bench.calibrate

K = 10
N_QUERIES = 1000
SINGLE = {"flat": 20, "numpy": 10}  # single queries timed per method (exact ones are slow; indexes 200)
WORKLOADS = {"auto": "interactive", "auto-batch": "batch"}  # the indexes built, `msfkit index --workload`
SHARD_ROWS = 65536
BLOCK = 65536


# -- data -----------------------------------------------------------------------------------------


def fashion_centres(count: int, seed: int, arch: str = "resnet18") -> np.ndarray:
    """Embeddings of `count` Fashion-MNIST training images by a BN-calibrated random ResNet (32 px)."""
    import torch

    from bench.calibrate import calibrate_batch_norm
    from msfkit.data.datasets import load_fashion_mnist
    from msfkit.models import Encoder, EncoderConfig

    torch.manual_seed(seed)
    images, _ = load_fashion_mnist("train")
    pick = np.random.default_rng(seed).choice(len(images), count, replace=False)
    x = torch.from_numpy(images[pick]).float().div(255).unsqueeze(1).repeat(1, 3, 1, 1)
    x = torch.nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False)
    mean, std = torch.tensor((0.286,) * 3).view(1, 3, 1, 1), torch.tensor((0.353,) * 3).view(1, 3, 1, 1)
    x = (x - mean) / std
    enc = Encoder(EncoderConfig(arch=arch, stem="cifar", image_size=32, resize=32))
    calibrate_batch_norm(enc, x)  # batch-norm statistics of the data, so features are not all alike
    return enc.embed(x, batch_size=250)


def clouds(centres: np.ndarray, n: int, seed: int, rank: int = 32) -> np.ndarray:
    """`n` unit vectors around `centres`, spread along a random `rank`-dimensional subspace."""
    rng = np.random.default_rng(seed)
    d = centres.shape[1]
    basis = np.linalg.qr(rng.standard_normal((d, rank)))[0].T.astype(np.float32)
    sims = centres @ centres.T
    np.fill_diagonal(sims, -1)
    nn_dist = np.sqrt(np.maximum(0, 2 - 2 * sims.max(axis=1)))
    scale = float(np.median(nn_dist)) / np.sqrt(rank)  # a cloud reaches its nearest neighbour clouds
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, BLOCK):
        e = min(n, s + BLOCK)
        x = centres[rng.integers(0, len(centres), e - s)]
        x = x + scale * (rng.standard_normal((e - s, rank)).astype(np.float32) @ basis)
        # plus isotropic noise a tenth the size of the in-subspace spread
        x += 0.1 * scale * np.sqrt(rank / d) * rng.standard_normal((e - s, d)).astype(np.float32)
        out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def write_store(root: Path, vectors: np.ndarray) -> None:
    """An embedding store of `vectors` written with msfkit.store's writer (paths are placeholders)."""
    from msfkit.store.format import Manifest, ModelRecord, write_manifest
    from msfkit.store.shards import shard_info
    from msfkit.store.writer import merge_errors, write_shard

    shards = []
    for k, s in enumerate(range(0, len(vectors), SHARD_ROWS)):
        e = min(len(vectors), s + SHARD_ROWS)
        meta = {"path": [f"{i:07d}.png" for i in range(s, e)], "label": [None] * (e - s)}
        meta |= {
            "width": [28] * (e - s),
            "height": [28] * (e - s),
            "bytes": [0] * (e - s),
            "mtime": [0.0] * (e - s),
        }
        write_shard(root, k, vectors[s:e], meta, [])
        shards.append(shard_info(root, k))
    merge_errors(root, range(len(shards)))
    model = ModelRecord(None, None, "bench", {})
    counts = (len(vectors), 0)
    manifest = Manifest(model, int(vectors.shape[1]), str(root), counts=counts, shards=shards, complete=True)
    write_manifest(root, manifest)


# -- one method, in its own process ------------------------------------------------------------------


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status in KiB (VmHWM: peak RSS of this program, reset by exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class AnonPeak:
    """Peak anonymous RSS of this process, sampled from /proc/self/status."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _status_kib("RssAnon") * 1024)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def numpy_topk(store, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-K by matrix products over the store's blocks (what you write without faiss)."""
    best_s = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), K), -1, dtype=np.int64)
    for start, block in store.iter_batches(BLOCK):
        s = queries @ block.T
        top = np.argpartition(-s, K - 1, axis=1)[:, :K]
        cs = np.concatenate([best_s, np.take_along_axis(s, top, 1)], 1)
        ci = np.concatenate([best_i, top + start], 1)
        o = np.argsort(-cs, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(cs, o, 1), np.take_along_axis(ci, o, 1)
    return best_s, best_i


def build_method(method: str, store_dir: str, work: str) -> dict:
    """Build `method`'s index folder (auto: `msfkit index` as a user runs it, with its workload)."""
    from msfkit.index import build_index

    peak = AnonPeak()
    t0 = time.perf_counter()
    info = build_index(
        store_dir,
        Path(work) / f"{method}-index",
        memory=os.environ.get("BENCH_MEMORY", "4GB"),
        workload=WORKLOADS[method],
    )
    return {
        "method": method,
        "build_s": round(time.perf_counter() - t0, 2),
        "build_peak_anon_mib": round(peak.stop() / 2**20),
        "factory": info["factory"],
        "params": info["search_params"],
        "built_recall": info["recall"]["recall_at_10"],
        "budget_gib": info["build"]["memory_budget"] / 2**30,
    }


def search_method(method: str, store_dir: str, queries_file: str, truth_file: str, work: str) -> dict:
    """Load `method`'s index (Flat: filled from the store), time the batch and single queries, recall."""
    from msfkit.store import open_store

    peak = AnonPeak()
    store = open_store(store_dir)
    queries = np.load(queries_file)
    if method == "numpy":
        search = lambda q: numpy_topk(store, q)  # noqa: E731
    elif method == "flat":
        import faiss

        index = faiss.IndexFlatIP(store.dim)
        for _, block in store.iter_batches(BLOCK):
            index.add(np.ascontiguousarray(block))
        search = lambda q: index.search(q, K)  # noqa: E731
    else:
        from msfkit.index import open_folder

        folder = open_folder(Path(work) / f"{method}-index")
        search = lambda q: folder.search_vectors(q, K)  # noqa: E731
    t = time.perf_counter()
    _, found = search(queries)
    qps = len(queries) / (time.perf_counter() - t)
    times = []
    for q in queries[: SINGLE.get(method, 200)]:
        t = time.perf_counter()
        search(q[None])
        times.append(time.perf_counter() - t)
    if method == "numpy":
        np.save(truth_file, found)
    truth = np.load(truth_file)
    recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)]))
    return {
        "method": method,
        "qps": round(qps, 1),
        "latency_ms_median": round(statistics.median(times) * 1000, 3),
        "recall_at_10": round(recall, 4),
        "peak_anon_mib": round(peak.stop() / 2**20),
        "maxrss_mib": round(_status_kib("VmHWM") / 1024),
    }


# -- driver -----------------------------------------------------------------------------------------


def child(*args: str) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_dataset(name: str, vectors: np.ndarray, work: Path, methods: list[str], rounds: int) -> dict:
    """Write the store; numpy's exact answers once (the truth); each index built once, in its own
    process; then `rounds` rounds, in alternating order, of every method searching in a fresh process."""
    store, queries = work / name, vectors[-N_QUERIES:]
    write_store(store, vectors[:-N_QUERIES])
    q, truth = str(work / f"{name}-queries.npy"), str(work / f"{name}-truth.npy")
    np.save(q, queries)
    child("search", "numpy", str(store), q, truth, str(work))
    built = {m: child("build", m, str(store), q, truth, str(work)) for m in methods if m in WORKLOADS}
    for m, b in built.items():
        print(f"  {name} built {m}: {b}", file=sys.stderr, flush=True)
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for r in range(rounds):
        for m in methods if r % 2 == 0 else methods[::-1]:
            runs[m].append(child("search", m, str(store), q, truth, str(work)))
        print(
            f"  {name} round {r + 1}: " + ", ".join(f"{m} {v[-1]['qps']}" for m, v in runs.items()),
            file=sys.stderr,
        )
    shutil.rmtree(store)
    for m in built:
        shutil.rmtree(work / f"{m}-index", ignore_errors=True)
    return {"built": built, "runs": runs}


def report(name: str, result: dict) -> None:
    built, runs = result["built"], result["runs"]
    flat = runs["flat"]
    print(f"\n{name}")
    print(
        f"{'method':<11} {'index':<20} {'build s':>8} {'QPS median':>10} {'min-max':>13} {'x Flat':>7} "
        f"{'1-query ms':>10} {'x Flat':>7} {'recall@10':>9} {'peak anon MiB':>13}"
    )
    for m, rs in runs.items():
        b = built.get(m, {})
        qps = [r["qps"] for r in rs]
        ratio = statistics.median(r["qps"] / f["qps"] for r, f in zip(rs, flat, strict=True))
        latency = statistics.median(r["latency_ms_median"] for r in rs)
        faster = statistics.median(
            f["latency_ms_median"] / r["latency_ms_median"] for r, f in zip(rs, flat, strict=True)
        )
        label = b.get("factory", "faiss Flat")
        print(
            f"{m:<11} {label:<20} {b.get('build_s', 0):>8.1f} {statistics.median(qps):>10.0f} "
            f"{min(qps):>6.0f}-{max(qps):<6.0f} {ratio:>7.1f} {latency:>10.2f} {faster:>7.0f} "
            f"{statistics.median(r['recall_at_10'] for r in rs):>9.4f} "
            f"{max(b.get('build_peak_anon_mib', 0), max(r['peak_anon_mib'] for r in rs)):>13}"
        )
    for m, b in built.items():
        print(
            f"{m}: search params {b['params']}, recall@10 measured at build {b['built_recall']}, "
            f"memory budget {b['budget_gib']:g} GiB"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="100k x 512 and 20k x 2048 instead")
    p.add_argument("--rounds", type=int, default=3, help="alternating search rounds per method")
    p.add_argument("--only", choices=["512", "2048"], help="one dataset only")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        phase, *rest = args.child
        out = build_method(rest[0], rest[1], rest[4]) if phase == "build" else search_method(*rest)
        print(json.dumps(out))
        return
    import faiss

    from msfkit.models.runtime import cpu_flags_line

    big, wide = (100_000, 20_000) if args.quick else (1_000_000, 100_000)
    print(cpu_flags_line())
    print(f"faiss {faiss.__version__}, {os.cpu_count()} cores, {faiss.omp_get_max_threads()} threads")
    with tempfile.TemporaryDirectory(prefix="msfkit-bench-") as tmp:
        work = Path(tmp)
        if args.only != "2048":
            t = time.perf_counter()
            centres = fashion_centres(2000, seed=0)
            data = clouds(centres, big + N_QUERIES, seed=1)
            print(f"data: {big} x 512 around 2000 Fashion-MNIST embeddings ({time.perf_counter() - t:.0f} s)")
            result = bench_dataset("fm512", data, work, ["flat", "auto", "auto-batch"], args.rounds)
            report(f"{big:,} x 512 (Fashion-MNIST clouds), {N_QUERIES} held-out queries", result)
            del data
        if args.only != "512":
            t = time.perf_counter()
            centres = fashion_centres(1000, seed=2, arch="resnet50")
            data = clouds(centres, wide + N_QUERIES, seed=3)
            print(
                f"data: {wide} x 2048 around 1000 Fashion-MNIST embeddings ({time.perf_counter() - t:.0f} s)"
            )
            result = bench_dataset("fm2048", data, work, ["flat", "auto"], args.rounds)
            report(f"{wide:,} x 2048 (Fashion-MNIST clouds), {N_QUERIES} held-out queries", result)


if __name__ == "__main__":
    main()
