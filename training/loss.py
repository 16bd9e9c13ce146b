"""The MSF loss (docs/method.md, step 6): mean squared distance of the query to the k neighbours of its
target.

For unit vectors ||v - z||^2 = 2 - 2<v, z>, so the loss is

    L = 1/B sum_b 1/k sum_j (2 - 2 <v_b, z_bj>)

with v the query embedding (gradients flow through it) and z_bj the k bank rows nearest the
TARGET embedding u_b (constants). With k = 1 the nearest row is u_b itself (it was enqueued
before the search), so L = 2 - 2 cos(v, u): asymmetric BYOL.
"""

from __future__ import annotations

import torch


def msf_loss(query: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """`query` (B, D) unit rows, `neighbours` (B, k, D) unit rows -> scalar loss."""
    cos = torch.einsum("bd,bkd->bk", query, neighbours.detach())
    return (2 - 2 * cos).mean()
