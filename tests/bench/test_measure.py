"""bench/measure.py: rounds that alternate their order, medians and per-round ratios, goals, FLOPs."""

from __future__ import annotations

import math

import torch

from bench.measure import alternate, gflop_of, goal, matmul_limit, not_a_goal, per_round, spread


def test_rounds_reverse_the_order_every_other_round():
    calls = []
    runs = {name: (lambda name=name: calls.append(name) or float(len(calls))) for name in "abc"}
    results = alternate(runs, 3)
    assert calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert results == {"a": [1.0, 6.0, 7.0], "b": [2.0, 5.0, 8.0], "c": [3.0, 4.0, 9.0]}


def test_a_ratio_is_taken_within_each_round_and_shown_as_median_and_range():
    naive, fast = [10.0, 20.0, 12.0], [5.0, 5.0, 4.0]  # round 2 was slowed for the naive run only
    ratios = per_round(naive, fast, lambda a, b: a / b)
    assert ratios == [2.0, 4.0, 3.0]
    assert spread(ratios, "{:.2f}") == "3.00 (2.00-4.00)"
    assert spread([0.5]) == "0.5 (0.5-0.5)"


def test_a_goal_is_judged_on_the_median_and_says_by_how_much_it_missed():
    assert goal("forward", [0.5, 0.6, 0.7], 0.55) == "PASS  forward >= 55%: 60% (50%-70%)"
    missed = goal("forward", [0.3, 0.44, 0.9], 0.55)
    assert missed == "MISS  forward >= 55%: 44% (30%-90%), 80% of the goal"
    assert goal("-h, s", [0.04, 0.06, 0.05], 0.05, "{:.2f}", at_most=True).startswith("PASS  -h, s <= 0.05")
    slow = goal("store row, s", [1.2, 1.5, 1.1], 1.0, "{:.2f}", at_most=True)
    assert slow.startswith("MISS") and slow.endswith("1.2x the goal")
    assert not_a_goal("bf16", "emulated") == "n/a   bf16 (emulated)"


def test_flops_are_counted_for_matmuls_and_the_limit_is_a_rate():
    a, b = torch.ones(10, 20), torch.ones(20, 30)
    assert gflop_of(lambda: a @ b) == 2 * 10 * 20 * 30 / 1e9
    limit = matmul_limit("fp32", torch.device("cpu"), n=64, seconds=0.02)
    assert limit > 0 and math.isfinite(limit)
