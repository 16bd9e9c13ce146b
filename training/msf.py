"""The MSF model and its training step (Koohpayegani et al., ICCV 2021; docs/method.md "One training step").

    online:    backbone -> projection -> prediction   query embedding v (gradients)
    target:    backbone -> projection                  target embedding u (EMA of online, no gradients)
    bank:      N past target embeddings                 the neighbours of u

`MSF.forward(x_target, x_query, labels, momentum)` is one step, in the paper's order. With k = 1
it is exactly asymmetric BYOL (the target is its own first neighbour).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msfkit.models import build_backbone, feature_dim, prediction_head, projection_head
from msfkit.training.bank import MemoryBank
from msfkit.training.distributed import all_gather
from msfkit.training.ema import ema_update_
from msfkit.training.loss import msf_loss


class Network(nn.Module):
    """Backbone + projection head: `encoder_q` / `encoder_t` of the reference code."""

    def __init__(self, arch: str, stem: str) -> None:
        super().__init__()
        self.backbone = build_backbone(arch, stem)
        self.projection = projection_head(feature_dim(arch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.backbone(x))


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, with gradient
    purity: torch.Tensor  # fraction of the k neighbours that share the sample's label (nan if unknown)
    target: torch.Tensor  # u, (B, D) unit rows, this process's part of the batch
    neighbours: torch.Tensor  # bank row indices of the k neighbours of each u, (B, k)


class MSF(nn.Module):
    def __init__(self, arch: str, stem: str, k: int, bank_size: int) -> None:
        super().__init__()
        d = feature_dim(arch)
        self.k = k
        self.online = Network(arch, stem)
        self.predictor = prediction_head(d)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.bank = MemoryBank(bank_size, d // 4)

    def forward(
        self,
        x_target: torch.Tensor,
        x_query: torch.Tensor,
        labels: torch.Tensor,
        momentum: float,
        bf16: bool = False,
    ) -> StepOutput:
        # 1. the target follows the online network: EMA over parameters (BN statistics stay its own)
        ema_update_(self.target, self.online, momentum)
        with torch.autocast(x_query.device.type, dtype=torch.bfloat16, enabled=bf16):
            # 2. target embedding u of the target view, without gradients
            with torch.no_grad():
                u = F.normalize(self.target(x_target).float(), dim=1)
            # 3. query embedding v of the query view
            v = F.normalize(self.predictor(self.online(x_query)).float(), dim=1)
        # 4. enqueue the whole (global) batch BEFORE searching, so u is its own first neighbour
        self.bank.enqueue(all_gather(u), all_gather(labels))
        # 5. the k bank rows nearest the TARGET embedding u
        _, idx = self.bank.search(u, self.k)
        # 6. pull v towards them: mean of 2 - 2<v, z> (one direction; gradients through v only)
        loss = msf_loss(v, self.bank.vectors[idx])
        # 7. purity, a monitor: how many neighbours share the sample's label
        known = labels >= 0
        same = (self.bank.labels[idx] == labels[:, None])[known]
        purity = same.float().mean() if known.any() else torch.tensor(float("nan"))
        return StepOutput(loss, purity, u, idx)
