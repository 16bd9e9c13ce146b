"""The memory bank: a ring buffer of any size that wraps, and an exact cosine top-k."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from msfkit.training.bank import MemoryBank


def _rows(start: int, n: int, dim: int = 4) -> torch.Tensor:
    return torch.arange(start, start + n, dtype=torch.float32)[:, None].repeat(1, dim)


def test_bank_wraps_for_a_size_that_is_not_a_multiple_of_the_batch():
    bank = MemoryBank(size=10, dim=4)
    for i in range(3):  # 12 rows into 10: rows 10 and 11 overwrite slots 0 and 1
        bank.enqueue(_rows(4 * i, 4), torch.arange(4 * i, 4 * i + 4))
    assert int(bank.ptr) == 2
    assert bank.vectors[:, 0].tolist() == [10, 11, 2, 3, 4, 5, 6, 7, 8, 9]
    assert bank.labels.tolist() == [10, 11, 2, 3, 4, 5, 6, 7, 8, 9]


def test_a_batch_larger_than_the_bank_keeps_the_newest_rows_in_ring_order():
    bank = MemoryBank(size=5, dim=4)
    bank.enqueue(_rows(0, 3))
    bank.enqueue(_rows(100, 7))  # only 102..106 survive, written from slot 3 + 2 = 0 onwards
    assert int(bank.ptr) == 0
    assert bank.vectors[:, 0].tolist() == [102, 103, 104, 105, 106]
    bank.enqueue(_rows(200, 1))
    assert bank.vectors[:, 0].tolist() == [200, 103, 104, 105, 106]


def test_bank_starts_as_unit_vectors_with_unknown_labels_and_is_saved_in_the_state_dict():
    bank = MemoryBank(size=7, dim=3)
    assert torch.allclose(bank.vectors.norm(dim=1), torch.ones(7))
    assert (bank.labels == -1).all()
    assert set(bank.state_dict()) == {"vectors", "labels", "ptr"}


def test_search_returns_the_exact_cosine_top_k():
    g = torch.Generator().manual_seed(0)
    bank = MemoryBank(size=50, dim=8)
    bank.enqueue(F.normalize(torch.randn(50, 8, generator=g), dim=1))
    q = F.normalize(torch.randn(3, 8, generator=g), dim=1)
    sims, idx = bank.search(q, 4)
    brute = (q @ bank.vectors.T).argsort(dim=1, descending=True)[:, :4]
    assert torch.equal(idx, brute)
    assert torch.allclose(sims, (q @ bank.vectors.T).gather(1, brute))
