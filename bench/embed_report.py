"""What bench/embed.py prints after its rounds: the rows in this process, the whole-process runs,
the goals of the speed issue (PASS or MISS) and the vectors' fidelity."""

from __future__ import annotations

import statistics

import numpy as np

from bench.embed_rows import NAIVE_PROCESS, Job
from bench.measure import goal, not_a_goal, per_round, spread
from msfkit.models.runtime import PRECISIONS, cpu_flags_line, cpu_has_fast_bf16

NAIVE = "naive loop (fp32)"
FORWARD_GOAL, STEADY_GOAL = 0.55, 0.8  # of the matmul limit; of the forward's rate


def steady(results: dict[str, list[float]], precision: str, n: int) -> list[float]:
    """Seconds for all n photos at `msfkit embed`'s rate past start-up, a round: that of the second
    half (the run over all of them less the run over the first half)."""
    full, half = results[f"msfkit embed ({precision})"], results[f"msfkit embed, first half ({precision})"]
    return per_round(full, half, lambda a, b: (a - b) * n / (n - n // 2))


def forward(results: dict[str, list[float]], precision: str) -> tuple[str, list[float]]:
    """The model-only row that `msfkit embed` runs (compiled on a CPU, eager on a GPU): name, seconds."""
    name = f"model only, compiled ({precision})"
    name = name if name in results else f"model only, eager ({precision})"
    return name, results[name]


def report(job: Job, results: dict[str, list[float]], cold: dict[str, float], gflop: float) -> None:
    """The tables and the goals of one bench run."""
    n = len(job.paths)
    limits = {p: results[f"matmul limit ({p})"] for p in PRECISIONS if f"matmul limit ({p})" in results}
    shares = {
        name: per_round(seconds, limits[_precision(name)], lambda s, limit: n * gflop / s / limit)
        for name, seconds in results.items()
        if name.startswith("model only")
    }
    print(f"\n{len(next(iter(results.values())))} alternating rounds; median (min-max) over them")
    if limits:
        print("matmul limit, GFLOP/s: " + ", ".join(f"{p} {spread(v, '{:,.0f}')}" for p, v in limits.items()))
        print(f"\n{'in this process':36}{'images/s':>24}{'x naive loop':>24}")
    for name, seconds in results.items() if limits else ():
        if name.startswith("model only"):
            note = f"{spread(shares[name], '{:.0%}')} of the {_precision(name)} matmul limit"
            if "compiled" in name:
                note += "; " + package_note(job.package_s[_precision(name)])
        elif name.startswith("msfkit embed (") or name.startswith("nvJPEG"):
            note = "package load included" if name.startswith("msfkit") else ""
        elif name == NAIVE:
            note = "bench/naive_embed.py's loop"
        else:
            continue
        _row(name, seconds, results[NAIVE], n, note)
        if name.startswith("msfkit embed ("):
            precision = _precision(name)
            kind, ceiling = forward(results, precision)
            of = spread(per_round(ceiling, steady(results, precision, n), lambda f, s: f / s), "{:.0%}")
            _row(f"msfkit embed, steady ({precision})", steady(results, precision, n), results[NAIVE], n,
                 f"{of} of the {kind.split(', ')[1]} model-only rate")  # fmt: skip
    if NAIVE_PROCESS in results:
        print(f"\n{f'whole process, {n:,} JPEGs':36}{'seconds':>24}{'x naive process':>24}  peak MiB")
        for name in (NAIVE_PROCESS, *(f"msfkit embed --precision {p}" for p in job.args.precisions)):
            ratio = spread(per_round(results[NAIVE_PROCESS], results[name], lambda a, b: a / b), "{:.2f}")
            ratio = "" if name == NAIVE_PROCESS else ratio
            print(f"{name:36}{spread(results[name]):>24}{ratio:>24}  {spread(job.peak_mib[name], '{:,.0f}')}")
        naive_median = statistics.median(results[NAIVE_PROCESS])
        for p, seconds in cold.items():
            print(
                f"first run, empty cache (before the rounds): msfkit embed --precision {p} "
                f"{seconds:.1f} s, {naive_median / seconds:.2f}x the naive process's median, "
                f"peak {job.peak_mib[f'first run ({p})'][0]:,.0f} MiB"
            )
    print("\ngoals (the speed issue's):")
    for line in goals(job, results, shares):
        print(line)


def package_note(seconds: dict[str, list[float]]) -> str:
    """How long getting the compiled model's package took: built (the first time, with an empty
    cache) and loaded (every later time), seconds over the rounds."""
    return ", ".join(
        f"package {done} {spread(seconds[done], '{:.2f}')} s"
        for done in ("built", "loaded")
        if done in seconds
    )


def _precision(name: str) -> str:
    """fp32 or bf16, from a row name that ends in it: "model only, eager (bf16)"."""
    return name.rsplit("(", 1)[1].rstrip(")")


def _row(name: str, seconds: list[float], naive: list[float], n: int, note: str) -> None:
    rates = spread([n / s for s in seconds])
    ratio = spread(per_round(naive, seconds, lambda a, b: a / b), "{:.2f}")
    print(f"{name:36}{rates:>24}{ratio:>24}  {note}")


def goals(job: Job, results: dict[str, list[float]], shares: dict[str, list[float]]) -> list[str]:
    """PASS, MISS or n/a for each goal: the forward against the matmul limit, `msfkit embed` at steady
    state against that forward, the whole process against the naive one."""
    if job.device.type != "cpu":
        return [not_a_goal("every goal", "they are stated for a CPU")]
    n, native, amx = len(job.paths), cpu_has_fast_bf16(), "amx_bf16" in cpu_flags_line().split()
    lines = []
    for p in job.args.precisions if NAIVE in results else ():
        kind, ceiling = forward(results, p)
        checks = [
            (f"{kind}: share of the {p} matmul limit", shares[kind], FORWARD_GOAL),
            (f"msfkit embed, steady ({p}): share of that forward's rate",
             per_round(ceiling, steady(results, p, n), lambda f, s: f / s), STEADY_GOAL),
        ]  # fmt: skip
        for what, values, target in checks:
            ok = p == "fp32" or native
            lines.append(goal(what, values, target) if ok else not_a_goal(what, "bf16 is emulated here"))
    if NAIVE_PROCESS not in results:
        return [*lines, not_a_goal("the whole-process goals", "--no-cli")]
    size = [] if n in (1_000, 10_000) else [f"stated for 1,000 JPEGs (and 10,000), not {n:,}"]
    for p, target, stated, applies in (
        ("fp32", 2.0, "a CPU without native bf16", not native),
        ("bf16", 8.0 if n >= 10_000 else 5.0, "a CPU with AMX", amx),
    ):
        if p not in job.args.precisions:
            continue
        name = f"msfkit embed --precision {p}"
        ratios = per_round(results[NAIVE_PROCESS], results[name], lambda a, b: a / b)
        line = goal(f"whole process, {name}, x the naive process", ratios, target, "{:.2f}x")
        notes = ([] if applies else [f"stated for {stated}, not this one"]) + size
        lines.append(f"{line}  [{'; '.join(notes)}]" if notes else line)
    return lines


def fidelity(vectors: dict[str, np.ndarray]) -> None:
    """bf16 against fp32 and msfkit fp32 against the naive loop: mean cosine and 10-NN overlap."""
    for a, b, what in (("bf16", "fp32", "bf16 vs fp32"), ("fp32", "naive", "msfkit fp32 vs naive loop")):
        cos = float(np.mean(np.sum(vectors[a] * vectors[b], axis=1)))
        print(f"{what}: mean cosine {cos:.4f}, 10-NN overlap {knn_overlap(vectors[a], vectors[b]):.3f}")


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each row's k nearest neighbours (itself excluded) that a and b agree on."""

    def neighbours(x):
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :k]

    na, nb = neighbours(a), neighbours(b)
    return float(np.mean([len(set(r) & set(s)) / k for r, s in zip(na, nb, strict=True)]))
