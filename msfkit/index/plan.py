"""Which faiss index fits N vectors of dimension D in a memory budget (`msfkit index --type auto`).

Exact search while N x D is small, HNSW while the graph builds quickly and fits, IVF-Flat while the
full vectors fit, IVF-PQ with the most bytes per vector that fit beyond that.

The workload decides the IVF-Flat's shape. `interactive` (the default): IVF with about 2 sqrt(N)
lists and a flat coarse quantizer, quick to build. `batch` (many queries at once): four times the
lists, found through an HNSW graph of the centroids (`IVF{4L}_HNSW32,Flat`), so that each query scans
a quarter of the vectors for the same recall. At 1M x 512 on 2 cores (`bench/search.py`,
BENCHMARKS.md), both tuned to recall@10 0.95: 90x exact Flat's batch queries/s against 12.8x, for 5x
the build time (k-means of 8192 centroids).

Stored on disk (`--on-disk`), an index is IVF: the coarse centroids (and PQ codebooks) stay in RAM
and must fit the budget, the inverted lists stay in index.ivfdata and the OS pages in the lists a
query probes. IVF-Flat is kept while its lists are at most DISK_RATIO times the budget, so the page
cache still holds a good share of them; IVF-PQ with the most bytes per vector within that beyond.
(autofaiss chooses the same way, with `should_be_memory_mappable` restricting it to IVF.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from msfkit.models.errors import MsfkitError
from msfkit.sizes import format_bytes

TYPES = ("auto", "flat", "hnsw", "ivf", "ivfpq")
WORKLOADS = ("interactive", "batch")
BATCH_LIST_FACTOR = 4  # batch workload: this many times the interactive lists, HNSW-quantized
DEFAULT_MEMORY = 4 * 2**30  # bytes the index may hold in RAM
FLAT_MAX_FLOATS = 2**23  # N x D up to this (32 MB): exact search is a few ms per query
HNSW_MAX_ROWS = 200_000  # beyond this the graph takes minutes to build on a few cores
HNSW_M = 32
HNSW_LINK_BYTES = 2 * HNSW_M * 4 + 24  # level-0 links (2M ids) + upper levels and bookkeeping
TRAIN_PER_LIST = 64  # training vectors per IVF list (faiss wants >= 39)
DISK_RATIO = 8  # on disk: inverted lists up to this many times the memory budget
LIST_ENTRY_BYTES = 24  # on disk: what each inverted list's directory entry keeps in RAM


@dataclass
class IndexPlan:
    """What `choose_index` decided: the type, the faiss factory string, and why."""

    type: str  # flat | hnsw | ivf | ivfpq
    factory: str  # faiss index_factory string
    bytes: int  # estimated size of the filled index
    resident: int  # of which in RAM while it is searched (all of it, unless stored on disk)
    nlist: int  # IVF lists (0 for flat and hnsw)
    train_rows: int  # vectors sampled to train it (0 when it needs no training)
    reason: str


def ivf_lists(n: int) -> int:
    """IVF list count: the power of two nearest 2*sqrt(N), with 50 training vectors for every list."""
    want = 2 ** round(math.log2(max(2.0, 2 * math.sqrt(n))))
    return int(max(1, min(want, 65536, n // 50)))


def choose_index(
    n: int,
    d: int,
    memory: int = DEFAULT_MEMORY,
    kind: str = "auto",
    on_disk: bool = False,
    workload: str = "interactive",
) -> IndexPlan:
    """The index for N vectors of dimension D within `memory` bytes; `kind` forces a type.

    `on_disk`: stored on disk, where the budget holds what stays in RAM (see the module docstring).
    `workload`: interactive | batch, the IVF-Flat's shape (see the module docstring)."""
    if kind not in TYPES:
        raise MsfkitError(f"index type {kind!r}: expected one of {', '.join(TYPES)}")
    if workload not in WORKLOADS:
        raise MsfkitError(f"workload {workload!r}: expected one of {', '.join(WORKLOADS)}")
    if n < 1:
        raise MsfkitError("the store holds no vectors: nothing to index")
    nlist = ivf_lists(n)
    if on_disk:
        if workload == "batch":
            raise MsfkitError("--workload batch builds an in-memory index; leave out --on-disk")
        return _disk_plan(n, d, nlist, memory, kind)
    ivf = _batch_ivf(n, d) if workload == "batch" else None
    train = min(n, TRAIN_PER_LIST * nlist)
    fits = {
        "flat": _in_memory("flat", "IDMap,Flat", n * (4 * d + 8), 0, 0, "exact search"),
        "hnsw": _in_memory(
            "hnsw", f"IDMap,HNSW{HNSW_M},Flat", n * (4 * d + HNSW_LINK_BYTES), 0, 0, "HNSW graph"
        ),
        "ivf": _in_memory(
            "ivf", f"IVF{nlist},Flat", n * (4 * d + 8) + nlist * d * 4, nlist, train, "IVF-Flat"
        ),
    }
    if ivf is not None:
        fits["ivf"] = ivf
    if kind in fits:
        plan = fits[kind]
        if plan.bytes > memory:
            raise MsfkitError(
                f"--type {kind} needs about {format_bytes(plan.bytes)} for {n} x {d} vectors, over the "
                f"memory budget {format_bytes(memory)}; raise --memory, use --type ivfpq, or --on-disk"
            )
        return plan
    if kind == "ivfpq":
        return _pq_plan(n, d, nlist, memory, on_disk=False)
    if n * d <= FLAT_MAX_FLOATS and fits["flat"].bytes <= memory:  # every choice keeps to the budget
        plan = fits["flat"]
        plan.reason = f"N x D = {n * d} <= {FLAT_MAX_FLOATS}: exact search is cheap"
    elif n <= HNSW_MAX_ROWS and fits["hnsw"].bytes <= memory:
        plan = fits["hnsw"]
        plan.reason = f"N = {n} <= {HNSW_MAX_ROWS} and the graph fits in {format_bytes(memory)}"
    elif fits["ivf"].bytes <= memory:
        plan = fits["ivf"]
        plan.reason = f"full vectors ({format_bytes(plan.bytes)}) fit in {format_bytes(memory)}"
        if ivf is not None:
            plan.reason += f"; batch workload: {plan.nlist} lists through an HNSW graph of their centroids"
    else:
        return _pq_plan(n, d, nlist, memory, on_disk=False)
    return plan


def _batch_ivf(n: int, d: int) -> IndexPlan:
    """IVF-Flat for batches: BATCH_LIST_FACTOR times the lists, an HNSW coarse quantizer (its graph of
    the centroids counted in the size)."""
    nlist = int(max(1, min(BATCH_LIST_FACTOR * ivf_lists(n), 65536, n // 50)))
    size = n * (4 * d + 8) + nlist * (d * 4 + HNSW_LINK_BYTES)
    train = min(n, TRAIN_PER_LIST * nlist)
    factory = f"IVF{nlist}_HNSW{HNSW_M},Flat"
    return _in_memory("ivf", factory, size, nlist, train, "IVF-Flat, HNSW coarse quantizer")


def _in_memory(kind: str, factory: str, size: int, nlist: int, train: int, reason: str) -> IndexPlan:
    return IndexPlan(kind, factory, size, size, nlist, train, reason)


def _disk_plan(n: int, d: int, nlist: int, memory: int, kind: str) -> IndexPlan:
    """IVF-Flat while its lists are at most DISK_RATIO x `memory`, IVF-PQ beyond (or as `kind` says)."""
    if kind in ("flat", "hnsw"):
        raise MsfkitError(f"--type {kind} cannot be stored on disk; an on-disk index is --type ivf or ivfpq")
    lists = n * (4 * d + 8)
    resident = nlist * (d * 4 + LIST_ENTRY_BYTES)
    if kind == "ivf" or (kind == "auto" and lists <= DISK_RATIO * memory):
        if resident > memory:
            raise MsfkitError(
                f"the {nlist} IVF centroids of {n} x {d} vectors need about {format_bytes(resident)} of "
                f"RAM, over the memory budget {format_bytes(memory)}; raise --memory"
            )
        train = min(n, TRAIN_PER_LIST * nlist)
        reason = f"on disk: lists of {format_bytes(lists)}, centroids in {format_bytes(memory)} of RAM"
        return IndexPlan("ivf", f"IVF{nlist},Flat", lists + resident, resident, nlist, train, reason)
    return _pq_plan(n, d, nlist, memory, on_disk=True)


def _pq_plan(n: int, d: int, nlist: int, memory: int, on_disk: bool) -> IndexPlan:
    """IVF-PQ with the most bytes per vector (up to D/2 sub-vectors of 2 dimensions) that fit the budget:
    the whole index in memory, or, on disk, the lists in DISK_RATIO x `memory`."""
    fixed = nlist * d * 4 + 256 * d * 4  # coarse centroids + PQ codebooks
    resident = fixed + (nlist * LIST_ENTRY_BYTES if on_disk else 0)
    nbits = int(min(8, max(1, math.log2(max(2, min(n, TRAIN_PER_LIST * nlist)) / 39))))
    for m in sorted((m for m in range(1, d // 2 + 1) if d % m == 0 and m <= 256), reverse=True):
        lists = n * (math.ceil(m * nbits / 8) + 8)
        fits = resident <= memory and lists <= DISK_RATIO * memory if on_disk else lists + fixed <= memory
        if fits:
            train = min(n, max(TRAIN_PER_LIST * nlist, 64 * 2**nbits))
            factory = f"IVF{nlist},PQ{m}x{nbits}"
            reason = f"compressed to {m * nbits // 8} B/vector" + (" on disk" if on_disk else "")
            held = resident if on_disk else lists + fixed
            return IndexPlan("ivfpq", factory, lists + fixed, held, nlist, train, reason)
    raise MsfkitError(
        f"{n} x {d} vectors do not fit in {format_bytes(memory)} even as IVF-PQ"
        + (" on disk" if on_disk else "")
        + "; raise --memory"
    )
