"""k-nearest-neighbour classification on L2-normalised features: the two protocols of MSF (docs/method.md).

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

`precision="bf16"` (the default "auto" picks it where training would: CUDA, AVX512-BF16 or AMX)
shortlists candidates with bf16 similarities and redoes with float32 candidates every query
whose shortlist a bf16 error bound cannot prove complete: same neighbours, up to 2x faster on
CPUs with bf16 dot products. When neighbours are too close for bf16 (over a quarter of the first
256 queries redone), "auto" goes on in float32. `precision="fp32"` finds every candidate in float32.

    preds = knn_classify(train_x, train_y, val_x, ks=(1, 20))            # {1: labels, 20: labels}
    acc = knn_accuracy(train_x, train_y, val_x, val_y, ks=(20,), protocol="dino")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from msfkit.eval.knn_search import as_unit_rows, budget_cells, top_neighbours
from msfkit.eval.labels import class_indices
from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import use_bf16

PROTOCOLS = ("msf", "dino")
DEFAULT_KS = {"msf": (1, 20), "dino": (20,)}
DEFAULT_TEMPERATURE = 0.07
AUTO_PROBE_ROWS = 256  # query rows on which precision="auto" decides whether bf16 pays


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
    classes, train_idx = class_indices(train_labels)
    train = as_unit_rows(train_feats, device)
    query = as_unit_rows(query_feats, device)
    ks = _check(train, train_idx, query, ks, protocol, temperature)
    bf16 = use_bf16(precision, train.device, "k-NN precision")
    fast = train.bfloat16() if bf16 else None
    labels_t = torch.as_tensor(train_idx, device=train.device)
    top = min(top, len(classes))
    out = {k: np.empty((len(query), top), dtype=np.int64) for k in ks}
    cells = budget_cells(memory_budget_bytes)
    q_rows, t_rows = (
        (max(1, min(len(query), cells // len(train))), len(train)) if cells >= len(train) else (1, cells)
    )
    probing = fast is not None and precision == "auto"
    q0 = 0
    while q0 < len(query):
        # "auto" tries bf16 on a small first chunk; when over a quarter of its rows had to be redone
        # (neighbours too close for bf16 to separate), float32 is faster from there on.
        rows = min(q_rows, AUTO_PROBE_ROWS) if probing else q_rows
        sims, nbrs, redone = top_neighbours(query[q0 : q0 + rows], train, max(ks), t_rows, cells, fast)
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
    classes, _ = class_indices(train_labels)
    val_labels = np.asarray(val_labels)
    class_indices(val_labels, classes)  # a val class unknown to train is an error
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
