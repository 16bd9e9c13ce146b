"""An on-disk index searched by a process given a fraction of the index's size in memory.

    .venv/bin/python bench/index_memory.py                         # 1M x 512 (2 GB of lists), 512 MiB
    .venv/bin/python bench/index_memory.py --rows 100000 --limit 64M   # a smoke run

`bench/index_ondisk.py`'s data and held-out queries; the index is built with `build_index(...,
on_disk=True)` (inverted lists in index.ivfdata, memory-mapped when opened). Then, in alternating
rounds, with the index's file dropped from the page cache before each (so that the limited run
pays for every page it reads, none charged to another group), a child process opens the index
folder (`msfkit.index.open_folder`, as `msfkit search` and `msfkit serve` do) and searches the
1,000 queries in one batch: once with no limit, once inside a cgroup (v1 `memory.limit_in_bytes`,
or v2 `memory.max`) that holds the process's resident memory, page cache included, to `--limit`.
Reported: queries/s (median, min-max), recall@10 of each, the
child's peak resident set, and the ratio limited/unlimited. Needs root (or a delegated cgroup) to
make the group; without one the script says so and stops.
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
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.index_ondisk import N_QUERIES, SHARD_ROWS, K, drop_cache, exact, vectors  # noqa: E402
from msfkit.sizes import format_bytes, parse_size  # noqa: E402

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


def make_cgroup(limit: int) -> tuple[Path, str]:
    """A new memory cgroup limited to `limit` bytes: (its folder, the file to write a pid into)."""
    name = f"msfkit-bench-{os.getpid()}"
    if (V1 / "memory.limit_in_bytes").exists():
        group = V1 / name
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit))
    else:
        group = V2 / name
        group.mkdir()
        (group / "memory.max").write_text(str(limit))
    return group, str(group / "cgroup.procs")


def child(index_dir: str, queries_file: str, found_file: str) -> None:
    """Open the index folder and search the queries once; print q/s and peak RSS as JSON."""
    from msfkit.index import open_folder

    queries = np.load(queries_file)
    index = open_folder(index_dir)
    start = time.perf_counter()
    _, found = index.search_vectors(queries, K)
    qps = len(queries) / (time.perf_counter() - start)
    np.save(found_file, found)
    status = Path("/proc/self/status").read_text().splitlines()
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    print(json.dumps({"qps": qps, "vmhwm_mib": hwm / 1024}))


def run_child(index_dir: Path, queries: Path, found: Path, procs: str | None) -> dict:
    """The child, inside the cgroup whose `procs` file is given (None: unlimited)."""

    def enter() -> None:
        if procs:
            Path(procs).write_text(str(os.getpid()))

    cmd = [sys.executable, __file__, "--child", str(index_dir), str(queries), str(found)]
    res = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=enter)
    if res.returncode != 0:
        return {"error": f"exit {res.returncode}: {res.stderr.strip().splitlines()[-1:] or 'killed'}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def recall(found: np.ndarray, queries: np.ndarray, store, tenth: np.ndarray) -> float:
    """Share of found rows scoring as high as the exact 10th neighbour (ties count)."""
    ids = np.unique(found[found >= 0])
    vecs = store.take(ids)[np.searchsorted(ids, np.maximum(found, ids[0]))]
    scores = np.where(found >= 0, np.einsum("qkd,qd->qk", vecs, queries), -np.inf)
    return float((scores >= tenth[:, None] - 1e-5).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--limit", default="512M", help="memory the limited search is given")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, help="folder for the store and index (default: a temporary one)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    limit = parse_size(args.limit, "--limit")
    try:
        group, procs = make_cgroup(limit)
    except OSError as e:
        sys.exit(f"cannot make a memory cgroup here ({e}); run as root or in a delegated cgroup")

    from msfkit.index import build_index
    from msfkit.models.runtime import cpu_flags_line  # loads torch: not in the child
    from msfkit.store import open_store
    from tests.msfkit.index_stores import write_vector_store

    print(cpu_flags_line())
    work = Path(tempfile.mkdtemp(prefix="msfkit-memory-", dir=args.work))
    try:
        store_dir = write_vector_store(work / "store", vectors(args.rows, args.dim, 1), shard_rows=SHARD_ROWS)
        store = open_store(store_dir)
        queries = vectors(N_QUERIES, args.dim, 2)
        np.save(work / "queries.npy", queries)
        tenth = exact(store, queries)
        start = time.perf_counter()
        info = build_index(store_dir, work / "index", on_disk=True)
        lists = (work / "index" / "index.ivfdata").stat().st_size
        print(
            f"{args.rows:,} x {args.dim}: {info['factory']} {info['search_params']}, built on disk in "
            f"{time.perf_counter() - start:.0f} s; index.ivfdata {format_bytes(lists)}, limit "
            f"{format_bytes(limit)} ({lists / limit:.1f}x smaller than the lists)",
            flush=True,
        )
        del store
        store = open_store(store_dir)
        results: dict[str, list[dict]] = {"unlimited": [], f"limited to {args.limit}": []}
        for r in range(args.rounds):
            order = list(results) if r % 2 == 0 else list(reversed(results))
            for name in order:
                found = work / "found.npy"
                drop_cache(work / "index" / "index.ivfdata")  # else pages cached by the other run are free
                got = run_child(
                    work / "index", work / "queries.npy", found, None if name == "unlimited" else procs
                )
                if "error" not in got:
                    got["recall"] = recall(np.load(found), queries, store, tenth)
                results[name].append(got)
                print(f"round {r + 1} {name}: {got}", flush=True)
        print(f"\n{'search':<22}{'median q/s':>12}{'min-max':>16}{'recall@10':>11}{'peak RSS MiB':>14}")
        medians = {}
        for name, runs in results.items():
            ok = [g for g in runs if "error" not in g]
            if not ok:
                print(f"{name:<22} failed: {runs[0]['error']}")
                continue
            q = [g["qps"] for g in ok]
            medians[name] = statistics.median(q)
            print(
                f"{name:<22}{medians[name]:>12.0f}{min(q):>8.0f}-{max(q):<7.0f}"
                f"{statistics.median(g['recall'] for g in ok):>11.4f}"
                f"{max(g['vmhwm_mib'] for g in ok):>14.0f}"
            )
        if len(medians) == 2:
            print(f"limited / unlimited (medians): {medians[list(results)[1]] / medians['unlimited']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        group.rmdir()


if __name__ == "__main__":
    main()
