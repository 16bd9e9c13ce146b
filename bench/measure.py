"""How the speed benches measure: runs alternated round by round, each run's median and spread over
the rounds, ratios taken within a round, FLOPs, the machine's matmul limit, and goals said as PASS or MISS.

Load from other processes, CPU clocks and caches drift over minutes. Every run goes once a round, in
one order and then reversed, so that drift hits all of them alike; a ratio between two runs is
taken inside each round, between runs that shared its conditions, and the median of those is shown.
Used by bench/embed.py, bench/startup.py and bench/train_step.py.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def alternate(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """What each run returned, one value a round. Every run goes once a round, in the given order in
    the first round and reversed in the next, and so on."""
    results: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for name in list(runs) if r % 2 == 0 else list(reversed(runs)):
            results[name].append(runs[name]())
            print(f"round {r + 1}/{rounds}: {name}: {results[name][-1]:.4g}", file=sys.stderr)
    return results


def per_round(a: list[float], b: list[float], f: Callable[[float, float], float]) -> list[float]:
    """f(a[r], b[r]) for each round r: a ratio taken between two runs of the same round."""
    return [f(x, y) for x, y in zip(a, b, strict=True)]


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """'median (min-max)' of one quantity over the rounds, each number written with `fmt`."""
    low, mid, high = (fmt.format(v) for v in (min(values), statistics.median(values), max(values)))
    return f"{mid} ({low}-{high})"


def goal(what: str, values: list[float], target: float, fmt: str = "{:.0%}", at_most: bool = False) -> str:
    """One goal line, judged on the median over the rounds: PASS or MISS and by how much it missed.
    The goal is `what` >= `target`, or <= with `at_most` (a time)."""
    got = statistics.median(values)
    ok = got <= target if at_most else got >= target
    line = f"{'PASS' if ok else 'MISS'}  {what} {'<=' if at_most else '>='} {fmt.format(target)}: "
    line += spread(values, fmt)
    if ok:
        return line
    return line + (f", {got / target:.1f}x the goal" if at_most else f", {got / target:.0%} of the goal")


def not_a_goal(what: str, why: str) -> str:
    """The line of a goal that this machine or run does not decide."""
    return f"n/a   {what} ({why})"


def matmul_limit(precision: str, device: torch.device, n: int = 4096, seconds: float = 3.0) -> float:
    """GFLOP/s of an n x n matmul in `precision` with torch's threads: the roof a model runs under."""
    a, b = (torch.randn(n, n, device=device).to(DTYPES[precision]) for _ in range(2))
    a @ b  # warm-up
    sync(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        sync(device)
        runs += 1
    return 2 * n**3 * runs / (time.perf_counter() - start) / 1e9


def gflop_of(run: Callable[[], object]) -> float:
    """GFLOPs that `run()` computes, by torch's FLOP counter (a multiply-add counts 2; matmuls and
    convolutions, forward and backward, whatever their precision)."""
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops() / 1e9


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a CUDA timing needs it; the CPU's is already done)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
