"""Batch search at 1M x 512: which faiss index answers the most queries/s at recall@10 >= 0.95,
against exact Flat measured in the same run, alternating.

    .venv/bin/python bench/search_batch.py                       # 1M x 512, the candidates below
    .venv/bin/python bench/search_batch.py --rows 100000 --rounds 3 --candidates "IVF2048,Flat"

Data: `bench/search.py`'s (clouds around 2,000 Fashion-MNIST embeddings of a BN-calibrated random
ResNet18, overlapping). Two query sets, both drawn like the data and never indexed: 1,000 tuning
queries choose each candidate's search parameter (the smallest nprobe, or nprobe and k_factor, that
reaches `--recall` against exact search), 1,000 held-out queries are what is timed and scored.
Each index is built once (train on a sample of 64 rows per list, then add), its build time and
its size as faiss writes it reported. Then `--rounds` rounds: in each, exact Flat and every
candidate search the held-out batch in turn; reported: median and min-max of queries/s, the
median ratio to Flat of the same round, recall@10 on the held-out queries, and the median latency
of single queries.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.search import clouds, fashion_centres  # noqa: E402
from msfkit.models.runtime import cpu_flags_line  # noqa: E402

K = 10
CANDIDATES = (
    "IVF2048,Flat",
    "IVF8192_HNSW32,Flat",
    "IVF2048,SQ8",
    "IVF2048,PQ128x4fs,RFlat",
    "IVF8192_HNSW32,PQ128x4fs,RFlat",
)
NPROBES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
K_FACTORS = (2, 4, 8, 16, 32, 64)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)]))


def exact(index: faiss.Index, queries: np.ndarray) -> np.ndarray:
    return index.search(queries, K)[1]


def build(factory: str, data: np.ndarray, seed: int = 0) -> tuple[faiss.Index, float]:
    """The index `factory` trained on 64 rows a list (sampled) and filled with `data`; build seconds."""
    start = time.perf_counter()
    index = faiss.index_factory(data.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    rows = np.random.default_rng(seed).choice(len(data), min(len(data), 64 * ivf.nlist), replace=False)
    index.train(data[np.sort(rows)])
    for s in range(0, len(data), 65536):
        index.add(data[s : s + 65536])
    return index, time.perf_counter() - start


def tune(index: faiss.Index, queries: np.ndarray, truth: np.ndarray, want: float) -> dict:
    """The cheapest search parameters that reach recall `want` on the tuning queries."""
    ps = faiss.ParameterSpace()
    refine = isinstance(index, faiss.IndexRefine)
    for nprobe in NPROBES:
        for k_factor in K_FACTORS if refine else (None,):
            params = f"nprobe={nprobe}" + (f",k_factor_rf={k_factor}" if k_factor else "")
            ps.set_index_parameters(index, params)
            got = recall(index.search(queries, K)[1], truth)
            if got >= want:
                return {"params": params, "tuning_recall": got}
    return {"params": params, "tuning_recall": got}


def size_mib(index: faiss.Index) -> float:
    return faiss.serialize_index(index).nbytes / 2**20


def qps(index: faiss.Index, queries: np.ndarray) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    found = index.search(queries, K)[1]
    return len(queries) / (time.perf_counter() - start), found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--recall", type=float, default=0.96, help="tuning target (held-out goal 0.95)")
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    ap.add_argument("--single", type=int, default=100, help="single queries timed per index")
    args = ap.parse_args()
    print(cpu_flags_line())
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    start = time.perf_counter()
    centres = fashion_centres(2000, seed=0)
    data = clouds(centres, args.rows + 2000, seed=1)
    data, tuning, held = data[: args.rows], data[args.rows : args.rows + 1000], data[args.rows + 1000 :]
    print(f"data: {args.rows:,} x {data.shape[1]} ({time.perf_counter() - start:.0f} s)")
    flat = faiss.IndexFlatIP(data.shape[1])
    flat.add(data)
    truth_tuning, truth = exact(flat, tuning), exact(flat, held)

    indexes = {}
    for factory in args.candidates:
        index, seconds = build(factory, data)
        tuned = tune(index, tuning, truth_tuning, args.recall)
        faiss.ParameterSpace().set_index_parameters(index, tuned["params"])
        indexes[factory] = index
        print(
            f"built {factory}: {seconds:.1f} s, {size_mib(index):.0f} MiB, {tuned['params']} "
            f"(tuning recall {tuned['tuning_recall']:.4f})",
            flush=True,
        )

    rates: dict[str, list[float]] = {"Flat": [], **{f: [] for f in indexes}}
    ratios: dict[str, list[float]] = {f: [] for f in indexes}
    recalls: dict[str, float] = {"Flat": 1.0}
    for r in range(args.rounds):
        order = [("Flat", flat), *indexes.items()]
        if r % 2:
            order.reverse()
        got = {}
        for name, index in order:
            got[name], found = qps(index, held)
            recalls[name] = recall(found, truth)
        for name in rates:
            rates[name].append(got[name])
        for name in ratios:
            ratios[name].append(got[name] / got["Flat"])
        print(f"round {r + 1}: " + ", ".join(f"{n} {q:.0f}" for n, q in got.items()), flush=True)

    head = f"{'q/s median':>10} {'min-max':>15} {'x Flat':>7} {'recall@10':>9} {'1-query ms':>10}"
    print(f"\n{'index':<32} {head}")
    for name, r in rates.items():
        index = flat if name == "Flat" else indexes[name]
        single = []
        for q in held[: args.single // (10 if name == "Flat" else 1)]:
            t = time.perf_counter()
            index.search(q[None], K)
            single.append(time.perf_counter() - t)
        ratio = statistics.median(ratios[name]) if name in ratios else 1.0
        print(
            f"{name:<32} {statistics.median(r):>10.0f} {min(r):>7.0f}-{max(r):<7.0f} {ratio:>7.1f} "
            f"{recalls[name]:>9.4f} {statistics.median(single) * 1000:>10.2f}"
        )


if __name__ == "__main__":
    main()
