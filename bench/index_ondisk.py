"""On-disk index benchmark: one IVF index searched memory-mapped (index.ivfdata) and from RAM, and
its build in pieces (here, and with --ray in Ray tasks) against the build in one process.

    .venv/bin/python bench/index_ondisk.py                              # 1,000,000 x 512: about 8 GB of disk
    .venv/bin/python bench/index_ondisk.py --rows 20000 --dim 64        # a smoke run (seconds)
    .venv/bin/python bench/index_ondisk.py --ray --json out.json        # the Ray build too; results as JSON

Data: `--rows` unit vectors around 2,000 random centres (each cloud as wide as the gap to its
nearest neighbour cloud, so neighbours cross clouds), written as an msfkit store in shards of
65,536 rows, and 1,000 queries drawn the same way, never indexed. Recall@10 is against exact
search (numpy, in blocks), counting a hit when it scores as high as the exact 10th (ties).

Builds: the same `--type` (default ivf) at the same seed, so every build trains the same quantizer
and answers alike: in memory in one process, on disk in pieces here, and (with --ray) on disk in
Ray tasks (Ray started once before, its start-up reported apart); `--repeats` rounds, the builds
alternating within each round. Search: the in-memory
index and the on-disk one opened once each, then per round, alternating: RAM; mmap with its file
in the page cache (warm); mmap after the file's pages were dropped from the page cache (cold,
posix_fadvise DONTNEED, no root needed). Each is one batch search of the queries at the index's
tuned nprobe: queries/s and recall@10. Reported: median and min-max over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' store writer (a store of chosen vectors)

K = 10
N_QUERIES = 1000
CENTRES = 2000
SHARD_ROWS = 65536
BLOCK = 65536


def vectors(n: int, d: int, seed: int) -> np.ndarray:
    """`n` unit vectors around CENTRES random centres (the same centres for every seed)."""
    centres = np.random.default_rng(0).standard_normal((CENTRES, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    spread = np.sqrt(2 / d)  # a cloud as wide as the gap between random centres
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        x = centres[rng.integers(0, CENTRES, m)] + spread * rng.standard_normal((m, d)).astype(np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact(store, queries: np.ndarray) -> np.ndarray:
    """Scores of the exact 10th neighbour of each query (numpy, one store block at a time)."""
    best = np.full((len(queries), K), -np.inf, dtype=np.float32)
    for _, block in store.iter_batches(BLOCK):
        scores = np.concatenate([best, queries @ block.T], axis=1)
        best = -np.sort(-np.partition(scores, scores.shape[1] - K, axis=1)[:, -K:], axis=1)
    return best[:, -1]


def recall(index, queries: np.ndarray, store, tenth: np.ndarray) -> float:
    """Recall@10: the share of found rows that score as high as the exact 10th neighbour."""
    _, found = index.search(queries, K)
    ids = np.unique(found[found >= 0])
    vecs = store.take(ids)[np.searchsorted(ids, found)]  # -1 (not found) is masked below
    scores = np.where(found >= 0, np.einsum("qkd,qd->qk", vecs, queries), -np.inf)
    return float((scores >= tenth[:, None] - 1e-5).mean())


def drop_cache(path: Path) -> None:
    """Evict the file's pages from the page cache (clean pages; no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--type", default="ivf", choices=["ivf", "ivfpq"])
    ap.add_argument("--repeats", type=int, default=3, help="rounds (at least 3)")
    ap.add_argument("--ray", action="store_true", help="also build with --engine ray (needs msfkit[ray])")
    ap.add_argument("--work", type=Path, help="folder for the store and indexes (default: a temporary one)")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be at least 3")

    from msfkit.index import build_index, open_folder
    from msfkit.store import open_store
    from tests.msfkit.index_stores import write_vector_store

    work = Path(tempfile.mkdtemp(prefix="msfkit-ondisk-", dir=args.work))
    try:
        t = time.perf_counter()
        store_dir = write_vector_store(work / "store", vectors(args.rows, args.dim, 1), shard_rows=SHARD_ROWS)
        store = open_store(store_dir)
        queries = vectors(N_QUERIES, args.dim, 2)
        tenth = exact(store, queries)
        print(
            f"store {args.rows} x {args.dim} and exact neighbours: {time.perf_counter() - t:.1f} s",
            flush=True,
        )

        builds = {"one process (memory)": {}, "pieces, local (disk)": {"on_disk": True}}
        if args.ray:  # Ray started before the rounds: its start-up is not a build's
            from msfkit.cluster import connect

            t = time.perf_counter()
            connect(None)
            print(f"ray started: {time.perf_counter() - t:.1f} s", flush=True)
            builds["pieces, ray (disk)"] = {"engine": "ray"}
        seconds: dict[str, list[float]] = {name: [] for name in builds}
        for r in range(args.repeats):
            for i, (name, opts) in enumerate(builds.items()):
                out = work / f"index{i}"
                t = time.perf_counter()
                info = build_index(store_dir, out, kind=args.type, overwrite=True, **opts)
                seconds[name].append(time.perf_counter() - t)
                print(
                    f"round {r + 1} build {name}: {seconds[name][-1]:.1f} s ({info['factory']})", flush=True
                )

        ram, disk = open_folder(work / "index0"), open_folder(work / "index1")
        ivfdata = work / "index1" / "index.ivfdata"
        runs = {"RAM": ram.index, "mmap, warm": disk.index, "mmap, cold": disk.index}
        qps: dict[str, list[float]] = {name: [] for name in runs}
        hits: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, index in runs.items():
                if name == "mmap, cold":
                    drop_cache(ivfdata)
                t = time.perf_counter()
                index.search(queries, K)
                qps[name].append(N_QUERIES / (time.perf_counter() - t))
                hits[name].append(recall(index, queries, store, tenth))

        result = {
            "rows": args.rows,
            "dim": args.dim,
            "factory": disk.info["factory"],
            "search_params": disk.info["search_params"],
            "ivfdata_bytes": ivfdata.stat().st_size,
            "build_seconds": {name: summary(v) for name, v in seconds.items()},
            "search": {
                name: {"qps": summary(qps[name]), "recall_at_10": summary(hits[name])} for name in runs
            },
        }
        mib = result["ivfdata_bytes"] / 2**20
        print(f"\n{result['factory']} {result['search_params']}, index.ivfdata {mib:.0f} MiB")
        print(f"{'build':<24}{'median s':>10}{'min':>8}{'max':>8}")
        for name, s in result["build_seconds"].items():
            print(f"{name:<24}{s['median']:>10.2f}{s['min']:>8.2f}{s['max']:>8.2f}")
        print(f"{'search':<24}{'median q/s':>12}{'min':>10}{'max':>10}{'recall@10':>11}")
        for name, s in result["search"].items():
            q, h = s["qps"], s["recall_at_10"]
            print(f"{name:<24}{q['median']:>12.0f}{q['min']:>10.0f}{q['max']:>10.0f}{h['median']:>11.4f}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
