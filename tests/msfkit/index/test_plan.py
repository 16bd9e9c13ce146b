"""msfkit.index.plan: the auto choice of index type from N, D and the memory budget."""

from __future__ import annotations

import pytest

from msfkit.index.plan import choose_index
from msfkit.models.errors import MsfkitError
from msfkit.sizes import parse_size

N, D = 2000, 32


@pytest.mark.parametrize(
    ("n", "d", "memory", "kind"),
    [
        (10_000, 512, "4GB", "flat"),  # cheap: exact
        (100_000, 2048, "4GB", "hnsw"),  # a graph builds quickly and fits
        (100_000, 2048, "512MB", "ivfpq"),  # 800 MB of vectors do not fit 512 MB
        (1_000_000, 512, "4GB", "ivf"),  # too many for a quick graph, the vectors fit
        (1_000_000, 512, "1GB", "ivfpq"),
    ],
)
def test_auto_choice_follows_size_and_memory_budget(n, d, memory, kind):
    plan = choose_index(n, d, parse_size(memory))
    assert plan.type == kind
    assert plan.bytes <= parse_size(memory)


def test_a_forced_type_over_the_budget_is_refused():
    with pytest.raises(MsfkitError, match="over the memory budget"):
        choose_index(1_000_000, 512, parse_size("1GB"), "flat")
    with pytest.raises(MsfkitError, match="expected a size"):
        parse_size("lots")


@pytest.mark.parametrize("memory", ["0", "1B", "1KB"])
def test_a_budget_nothing_fits_is_refused_for_every_type_auto_too(memory):
    for kind in ("auto", "flat", "hnsw", "ivf", "ivfpq"):
        with pytest.raises(MsfkitError, match="over the memory budget|do not fit in"):
            choose_index(N, D, parse_size(memory), kind)


def test_auto_never_chooses_exact_search_over_the_budget():
    exact = choose_index(N, D, parse_size("4GB"))
    assert exact.type == "flat"
    plan = choose_index(N, D, exact.bytes - 1)  # cheap enough for exact search, but over the budget
    assert plan.type == "ivfpq" and plan.bytes < exact.bytes


@pytest.mark.parametrize(
    ("n", "d", "memory", "kind"),
    [
        (1_000_000, 512, "256MB", "ivf"),  # 2 GB of lists: 8 x the budget, on disk; IVF-PQ in RAM
        (10_000_000, 512, "1GB", "ivfpq"),  # 20 GB of lists: more than 8 x the budget
        (10_000, 512, "4GB", "ivf"),  # small: still IVF, never exact or HNSW on disk
    ],
)
def test_on_disk_keeps_full_vectors_while_the_lists_are_a_few_times_the_budget(n, d, memory, kind):
    budget = parse_size(memory)
    plan = choose_index(n, d, budget, on_disk=True)
    assert plan.type == kind
    assert plan.resident <= budget and plan.bytes - plan.resident <= 8 * budget
    if n == 1_000_000:  # larger than the budget, and the same budget in RAM would compress
        assert plan.bytes > 4 * budget and choose_index(n, d, budget).type == "ivfpq"


def test_on_disk_the_centroids_must_fit_the_budget():
    with pytest.raises(MsfkitError, match="IVF centroids .* over the memory budget"):
        choose_index(10_000_000, 512, parse_size("1MB"), "ivf", on_disk=True)


def test_a_batch_workload_takes_four_times_the_lists_through_an_hnsw_quantizer():
    interactive = choose_index(1_000_000, 512, parse_size("4GB"))
    batch = choose_index(1_000_000, 512, parse_size("4GB"), workload="batch")
    assert interactive.factory == "IVF2048,Flat"
    assert batch.factory == "IVF8192_HNSW32,Flat" and batch.type == "ivf" and batch.nlist == 8192
    assert interactive.bytes < batch.bytes <= parse_size("4GB") and "batch workload" in batch.reason
    # the workload shapes only IVF-Flat: exact search and IVF-PQ plans stay as they are
    assert choose_index(N, D, parse_size("4GB"), workload="batch").factory == "IDMap,Flat"
    assert choose_index(1_000_000, 512, parse_size("1GB"), workload="batch").type == "ivfpq"


def test_a_batch_workload_on_disk_or_an_unknown_workload_is_one_line():
    with pytest.raises(MsfkitError, match="in-memory index; leave out --on-disk"):
        choose_index(1_000_000, 512, parse_size("1GB"), on_disk=True, workload="batch")
    with pytest.raises(MsfkitError, match="expected one of interactive, batch"):
        choose_index(N, D, workload="bulk")
