"""The memory bank of MSF: a FIFO ring buffer of past target embeddings, (N, D), on registered buffers.

Any size works: writes wrap around the end (the reference code needs N % batch == 0; this does
not). It starts as random unit vectors, as the reference does, with labels -1 (unknown). The
labels are kept only to measure the purity of the neighbours; the method never reads them.
Vectors are kept in float32 whatever the autocast precision, so the search ranks exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MemoryBank(nn.Module):
    """`enqueue` (B, D) rows at the pointer; `search` the k most cosine-similar rows."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("vectors", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.vectors.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Write `keys` (B, D) after the last written row, wrapping; the oldest rows are overwritten."""
        if labels is None:
            labels = torch.full((len(keys),), -1, dtype=torch.long, device=keys.device)
        if len(keys) > self.size:  # only the newest `size` rows would survive anyway
            skipped = len(keys) - self.size
            keys, labels = keys[skipped:], labels[skipped:]
            self.ptr.add_(skipped).remainder_(self.size)
        rows = (self.ptr + torch.arange(len(keys), device=keys.device)) % self.size
        self.vectors.index_copy_(0, rows, keys.to(self.vectors.dtype))
        self.labels.index_copy_(0, rows, labels.to(self.labels.dtype))
        self.ptr.add_(len(keys)).remainder_(self.size)

    @torch.no_grad()
    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(similarities (B, k), row indices (B, k)) of the k rows most cosine-similar to each query."""
        sims = queries.to(self.vectors.dtype) @ self.vectors.T
        return sims.topk(k, dim=1)
