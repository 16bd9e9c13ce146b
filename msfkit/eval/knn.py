"""k-nearest-neighbour classification on L2-normalised features: the two protocols of MSF.md.

- `protocol="msf"` (the MSF paper's reference): cosine neighbours, UNWEIGHTED majority vote,
  reported at k = 1 and k = 20. A tie in votes goes to the tied class whose nearest voter is the
  closest (so k = 2 with two classes is 1-NN, and the answer never depends on chance).
- `protocol="dino"` (what most later papers report): the same neighbours, each voting with
  weight exp(sim / T), T = 0.07; top-1 and top-5. Classes with equal weight (rare) rank by
  their position in the sorted class list.

Neighbours are ranked by cosine similarity computed in float64 (candidates found in float32 or
bf16 first); among exactly equal similarities the one earlier in the train set ranks first.
Classes are the sorted unique train labels (any values: ints with gaps, strings). Features are
L2-normalised here (cosine). The work is chunked so that one similarity block never exceeds
`memory_budget_bytes`; k is never clamped: a k larger than the train set is an error.

`precision="bf16"` (the default "auto" picks it on CPUs with bf16 dot products: AVX512-BF16, AMX)
shortlists candidates with bf16 similarities and redoes with float32 candidates every query
whose shortlist a bf16 error bound cannot prove complete: same neighbours, up to 2x faster on
CPUs with bf16 dot products. When neighbours are too close for bf16 (over a quarter of the first
256 queries redone), "auto" goes on in float32. `precision="fp32"` finds every candidate in float32.

    preds = knn_classify(train_x, train_y, val_x, ks=(1, 20))            # {1: labels, 20: labels}
    acc = knn_accuracy(train_x, train_y, val_x, val_y, ks=(20,), protocol="dino")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import PRECISIONS, check_precision

PROTOCOLS = ("msf", "dino")
DEFAULT_KS = {"msf": (1, 20), "dino": (20,)}
DEFAULT_TEMPERATURE = 0.07
DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes for one query x train similarity block
SHORTLIST_MARGIN = 64  # extra bf16 candidates per query before the float64 re-ranking
AUTO_PROBE_ROWS = 256  # query rows on which precision="auto" decides whether bf16 pays
EXACT_MARGIN = 8  # extra float32 candidates, so float32 rounding cannot decide between near-equal neighbours


def knn_classify(
    train_feats,
    train_labels,
    query_feats,
    *,
    ks: Sequence[int] = (20,),
    protocol: str = "msf",
    temperature: float = DEFAULT_TEMPERATURE,
    memory_budget_bytes: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "auto",
) -> dict[int, np.ndarray]:
    """Predicted label of every query row, for each k: {k: labels (Nq,)} in the train labels' dtype."""
    ranked = knn_scores(
        train_feats,
        train_labels,
        query_feats,
        ks=ks,
        protocol=protocol,
        temperature=temperature,
        memory_budget_bytes=memory_budget_bytes,
        device=device,
        precision=precision,
        top=1,
    )
    return {k: r[:, 0] for k, r in ranked.items()}


def knn_scores(
    train_feats,
    train_labels,
    query_feats,
    *,
    ks: Sequence[int] = (20,),
    protocol: str = "msf",
    temperature: float = DEFAULT_TEMPERATURE,
    memory_budget_bytes: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    top: int = 5,
) -> dict[int, np.ndarray]:
    """The `top` best classes of every query row, best first: {k: labels (Nq, min(top, C))}.

    Column 0 is the prediction. For "msf" the ranking is (votes, nearest voter); for "dino" it
    is the summed exp(sim / T) weight. Classes nobody voted for fill the tail in class order.
    """
    classes, train_idx = _classes(train_labels)
    train = _as_unit_rows(train_feats, device)
    query = _as_unit_rows(query_feats, device)
    ks = _check(train, train_idx, query, ks, protocol, temperature)
    use_bf16 = _use_bf16(precision, train.device)
    fast = train.bfloat16() if use_bf16 else None
    labels_t = torch.as_tensor(train_idx, device=train.device)
    top = min(top, len(classes))
    out = {k: np.empty((len(query), top), dtype=np.int64) for k in ks}
    cells = _budget_cells(memory_budget_bytes)
    q_rows, t_rows = (
        (max(1, min(len(query), cells // len(train))), len(train)) if cells >= len(train) else (1, cells)
    )
    probing = fast is not None and precision == "auto"
    q0 = 0
    while q0 < len(query):
        # "auto" tries bf16 on a small first chunk; when over a quarter of its rows had to be redone
        # (neighbours too close for bf16 to separate), float32 is faster from there on.
        rows = min(q_rows, AUTO_PROBE_ROWS) if probing else q_rows
        sims, nbrs, redone = _top_neighbours(query[q0 : q0 + rows], train, max(ks), t_rows, cells, fast)
        if probing and redone > len(sims) // 4:
            fast = None
        probing = False
        nbr_labels = labels_t[nbrs]
        for k in ks:
            scores = _vote(sims[:, :k], nbr_labels[:, :k], len(classes), protocol, temperature)
            # Stable descending sort: equal scores keep class order.
            order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :top]
            out[k][q0 : q0 + len(order)] = order.cpu().numpy()
        q0 += rows
    return {k: classes[v] for k, v in out.items()}


def knn_accuracy(
    train_feats,
    train_labels,
    val_feats,
    val_labels,
    *,
    ks: Sequence[int] | None = None,
    protocol: str = "msf",
    temperature: float = DEFAULT_TEMPERATURE,
    memory_budget_bytes: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "auto",
) -> dict[str, Any]:
    """Top-1 (and, for "dino", top-5) accuracy in percent for each k, with what was measured.

    Returns {"protocol", "temperature" (None for "msf"), "n_train", "n_val", "n_classes",
    "top1": {k: %}, "top5": {k: %} ("dino" only, else {})}. A val label that is not a train
    class is an error: k-NN could never predict it.
    """
    ks = tuple(ks) if ks is not None else DEFAULT_KS.get(protocol, (20,))
    classes, _ = _classes(train_labels)
    val_labels = np.asarray(val_labels)
    unknown = np.setdiff1d(np.unique(val_labels), classes)
    if len(unknown):
        shown = ", ".join(map(str, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        raise MsfkitError(f"val has classes the train set lacks: {shown}")
    ranked = knn_scores(
        train_feats,
        train_labels,
        val_feats,
        ks=ks,
        protocol=protocol,
        temperature=temperature,
        memory_budget_bytes=memory_budget_bytes,
        device=device,
        precision=precision,
        top=5,
    )
    truth = val_labels[:, None]
    top1 = {k: float((r[:, 0] == val_labels).mean() * 100) for k, r in ranked.items()}
    top5 = {k: float((r[:, :5] == truth).any(1).mean() * 100) for k, r in ranked.items()}
    return {
        "protocol": protocol,
        "temperature": temperature if protocol == "dino" else None,
        "n_train": len(np.asarray(train_labels)),
        "n_val": len(val_labels),
        "n_classes": len(classes),
        "top1": top1,
        "top5": top5 if protocol == "dino" else {},
    }


def _vote(sims: torch.Tensor, labels: torch.Tensor, n_classes: int, protocol: str, t: float) -> torch.Tensor:
    """(Nq, C) scores from the k neighbours (sorted nearest first); higher is better."""
    nq, k = labels.shape
    if protocol == "dino":
        weights = (sims.double() / t).exp()
        return torch.zeros(nq, n_classes, dtype=torch.float64, device=sims.device).scatter_add_(
            1, labels, weights
        )
    votes = torch.zeros(nq, n_classes, dtype=torch.int64, device=sims.device)
    votes.scatter_add_(1, labels, torch.ones_like(labels))
    # Rank of each class's nearest voter (k when it has none): the tie-break, exact in integers.
    ranks = torch.arange(k, device=sims.device).expand(nq, k)
    first = torch.full((nq, n_classes), k, dtype=torch.int64, device=sims.device)
    first.scatter_reduce_(1, labels, ranks, reduce="amin")
    return votes * (k + 1) + (k - first)


def _top_neighbours(
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
            best_s[redo], best_i[redo], _ = _top_neighbours(query[redo], train, k, t_rows, cells, None)
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


def _use_bf16(precision: str, device: torch.device) -> bool:
    check_precision(precision, ("auto", *PRECISIONS), "k-NN precision")
    if precision != "auto":
        return precision == "bf16"
    if device.type != "cpu":  # GPUs do float32 fast enough, and may reduce bf16 GEMMs in bf16
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _budget_cells(budget: int | None) -> int:
    """How many float32 similarities one block may hold."""
    budget = DEFAULT_MEMORY_BUDGET if budget is None else int(budget)
    if budget < 4:
        raise MsfkitError(f"memory budget of {budget} bytes is too small for one similarity")
    return budget // 4


def _classes(labels) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique classes, index of each label into them)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise MsfkitError(f"labels must be one-dimensional, got shape {labels.shape}")
    classes, idx = np.unique(labels, return_inverse=True)
    return classes, idx.astype(np.int64)


def _as_unit_rows(x, device) -> torch.Tensor:
    """float32 rows scaled to unit length (cosine similarity is then a dot product)."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    t = t.to(device=device, dtype=torch.float32)
    return torch.nn.functional.normalize(t, dim=1) if t.ndim == 2 else t


def _check(train, train_idx, query, ks, protocol, temperature) -> tuple[int, ...]:
    if protocol not in PROTOCOLS:
        raise MsfkitError(f"unknown k-NN protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if protocol == "dino" and not temperature > 0:
        raise MsfkitError(f"temperature must be positive, not {temperature}")
    if train.ndim != 2 or query.ndim != 2:
        raise MsfkitError("features must be 2-D arrays (N, D)")
    if len(train) == 0:
        raise MsfkitError("the train split is empty")
    if len(query) == 0:
        raise MsfkitError("the val split is empty")
    if len(train_idx) != len(train):
        raise MsfkitError(f"{len(train)} train features but {len(train_idx)} train labels")
    if train.shape[1] != query.shape[1]:
        raise MsfkitError(f"train features are {train.shape[1]}-d but val features are {query.shape[1]}-d")
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise MsfkitError(f"k must be at least 1, got {list(ks)}")
    if ks[-1] > len(train):
        raise MsfkitError(f"k={ks[-1]} is larger than the train set ({len(train)} items)")
    return ks
