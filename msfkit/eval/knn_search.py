"""Exact top-k neighbours by cosine for the k-NN protocols: blocked within a memory budget, with an
optional bf16 shortlist whose misses a proven error bound sends back to float32.

Candidates are re-scored in float64, so the neighbours never depend on the chunking, and among
exactly equal similarities the one earlier in the train set ranks first.
"""

from __future__ import annotations

import numpy as np
import torch

from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import float32_sums

DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes for one query x train similarity block
SHORTLIST_MARGIN = 64  # extra bf16 candidates per query before the float64 re-ranking
EXACT_MARGIN = 8  # extra float32 candidates, so float32 rounding cannot decide between near-equal neighbours


def top_neighbours(
    query: torch.Tensor, train: torch.Tensor, k: int, t_rows: int, cells: int, fast: torch.Tensor | None
):
    """(similarities float64, train indices, rows redone) of the k nearest train rows, nearest first.

    A shortlist of candidates comes from float32 similarities (k + EXACT_MARGIN of them) or, with
    `fast` (the train set in bf16), from bf16 ones (k + max(k, SHORTLIST_MARGIN)); the candidates
    are re-scored in float64, row by row, and the best k kept. So the neighbours and the dino
    weights never depend on the chunking, and a float32 rounding never swaps near-equal
    neighbours. A bf16 row whose shortlist the bf16 error bound cannot prove complete is redone
    from float32 candidates.
    """
    if fast is None:
        cand_i = _merge_blocks(query, train, k + EXACT_MARGIN, t_rows)[1]
        return (*_rescored(query, train, cand_i, k, cells), 0)
    short = k + max(k, SHORTLIST_MARGIN)
    with float32_sums():  # the error bound below holds for float32 sums
        cand_s, cand_i = _merge_blocks(query.bfloat16(), fast, short, t_rows)
    # float32 on the whole shortlist, float64 only on the k + EXACT_MARGIN best of it (the costly part)
    step = max(1, cells // (cand_i.shape[1] * train.shape[1]))
    s32 = torch.cat(
        [
            torch.einsum("qd,qcd->qc", query[r : r + step], train[cand_i[r : r + step]])
            for r in range(0, len(query), step)
        ]
    )
    near = cand_i.gather(1, s32.topk(min(k + EXACT_MARGIN, s32.shape[1]), dim=1).indices)
    best_s, best_i = _rescored(query, train, near, k, cells)
    if cand_i.shape[1] < len(train):
        # A train row outside the shortlist has bf16 similarity <= the shortlist's last one, so its
        # exact similarity is at most that plus the bf16 error bound.
        ceiling = cand_s[:, -1].double() + _bf16_error_bound(query.shape[1])
        redo = (best_s[:, -1] <= ceiling).nonzero().flatten()
        if len(redo):
            best_s[redo], best_i[redo], _ = top_neighbours(query[redo], train, k, t_rows, cells, None)
        return best_s, best_i, len(redo)
    return best_s, best_i, 0


def _rescored(query: torch.Tensor, train: torch.Tensor, cand_i: torch.Tensor, k: int, cells: int):
    """The k best candidates by float64 similarity, computed pair by pair (blocks fit the budget)."""
    step = max(1, cells // (2 * cand_i.shape[1] * train.shape[1]))
    s = torch.cat(
        [
            (query[r : r + step, None, :].double() * train[cand_i[r : r + step]].double()).sum(-1)
            for r in range(0, len(query), step)
        ]
    )
    return _sorted_top(s, cand_i, k)


def _merge_blocks(query: torch.Tensor, train: torch.Tensor, k: int, t_rows: int):
    """Running top-k (values, indices) of query @ train.T over blocks of `t_rows` train rows."""
    best_s = best_i = None
    for t0 in range(0, len(train), t_rows):
        block = query @ train[t0 : t0 + t_rows].T
        s, i = block.topk(min(k, block.shape[1]), dim=1)
        i += t0
        if best_s is not None:
            s, i = torch.cat([best_s, s], 1), torch.cat([best_i, i], 1)
            s, keep = s.topk(min(k, s.shape[1]), dim=1)
            i = i.gather(1, keep)
        best_s, best_i = s, i
    return best_s, best_i


def _sorted_top(s: torch.Tensor, i: torch.Tensor, k: int):
    """The k best (similarity, index) pairs, nearest first; equal similarities: lower index first."""
    by_index = i.argsort(dim=1, stable=True)
    s, i = s.gather(1, by_index), i.gather(1, by_index)
    by_sim = s.argsort(dim=1, descending=True, stable=True)[:, :k]
    return s.gather(1, by_sim), i.gather(1, by_sim)


def _bf16_error_bound(dim: int) -> float:
    """Bound on |bf16 dot - exact dot| for unit vectors, with a 25 % margin: both inputs rounded to
    bf16 (relative error u = 2^-9 each: 2u + u^2), float32 accumulation of `dim` products
    (dim * 2^-24) and the result rounded to bf16 (u)."""
    u = 2.0**-9
    return 1.25 * (3 * u + u * u + dim * 2.0**-24 * (1 + u) ** 2)


def budget_cells(budget: int | None) -> int:
    """How many float32 similarities one block may hold."""
    budget = DEFAULT_MEMORY_BUDGET if budget is None else int(budget)
    if budget < 4:
        raise MsfkitError(f"memory budget of {budget} bytes is too small for one similarity")
    return budget // 4


def as_unit_rows(x, device) -> torch.Tensor:
    """float32 rows scaled to unit length (cosine similarity is then a dot product)."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    t = t.to(device=device, dtype=torch.float32)
    return torch.nn.functional.normalize(t, dim=1) if t.ndim == 2 else t
