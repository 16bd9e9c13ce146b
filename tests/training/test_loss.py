"""The MSF loss and step: k = 1 is asymmetric BYOL, the target is its own first neighbour, k = 5 by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from msfkit.training.loss import msf_loss
from msfkit.training.msf import MSF


def _tiny_msf(k: int, bank_size: int = 64) -> MSF:
    torch.manual_seed(0)
    return MSF("resnet18", "cifar", k=k, bank_size=bank_size)


def _views(n: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 3


def test_k1_loss_is_asymmetric_byol_and_target_is_its_own_first_neighbour():
    model = _tiny_msf(k=1)
    x_t, x_q, labels = _views()
    out = model(x_t, x_q, labels, momentum=0.99)
    # BYOL-asym computed independently: target projection vs online prediction, same BN batches
    with torch.no_grad():
        u = F.normalize(model.target(x_t), dim=1)
        v = F.normalize(model.predictor(model.online(x_q)), dim=1)
    byol = (2 - 2 * F.cosine_similarity(v, u, dim=1)).mean()
    assert abs(out.loss.item() - byol.item()) < 1e-6
    # the row found first is the row where u was just written (the bank had 0 rows used before)
    assert torch.equal(out.neighbours[:, 0], torch.arange(len(x_t)))
    assert torch.allclose(model.bank.vectors[out.neighbours[:, 0]], u, atol=1e-6)


def test_target_is_first_neighbour_of_itself_with_k5_and_a_full_bank():
    model = _tiny_msf(k=5, bank_size=10)
    for step in range(3):  # wraps the 10-row bank: the last batch's rows are 8, 9, 0, 1
        out = model(*_views(n=4, seed=step), momentum=0.99)
    assert torch.equal(out.neighbours[:, 0], torch.tensor([8, 9, 0, 1]))
    sims = out.target @ model.bank.vectors[out.neighbours[:, 0]].T
    assert torch.allclose(sims.diagonal(), torch.ones(4), atol=1e-6)


def test_k5_loss_equals_the_formula_on_hand_built_tensors():
    g = torch.Generator().manual_seed(3)
    v = F.normalize(torch.randn(3, 8, generator=g), dim=1)
    z = F.normalize(torch.randn(3, 5, 8, generator=g), dim=2)
    by_hand = 0.0
    for b in range(3):
        by_hand += sum(2 - 2 * float(v[b] @ z[b, j]) for j in range(5)) / 5
    by_hand /= 3
    assert abs(msf_loss(v, z).item() - by_hand) < 1e-6


def test_step_loss_uses_the_k_nearest_rows_to_the_target_not_the_query():
    model = _tiny_msf(k=5, bank_size=32)
    model(*_views(n=4, seed=2), momentum=0.99)  # fill part of the bank with real embeddings
    x_t, x_q, labels = _views(n=4)
    out = model(x_t, x_q, labels, momentum=0.99)
    with torch.no_grad():
        v = F.normalize(model.predictor(model.online(x_q)), dim=1)
    # brute force: the 5 bank rows of largest cosine with u, then (1/k) sum (2 - 2 <v, z>)
    top = (out.target @ model.bank.vectors.T).argsort(dim=1, descending=True)[:, :5]
    expected = (2 - 2 * torch.einsum("bd,bkd->bk", v, model.bank.vectors[top])).mean()
    assert torch.equal(out.neighbours.sort(dim=1).values, top.sort(dim=1).values)
    assert abs(out.loss.item() - expected.item()) < 1e-6
    # the loss differs from one that searched by the query embedding
    by_query = (v @ model.bank.vectors.T).argsort(dim=1, descending=True)[:, :5]
    assert not torch.equal(by_query.sort(dim=1).values, top.sort(dim=1).values)


def test_gradient_flows_through_the_online_network_only():
    model = _tiny_msf(k=5)
    x_t, x_q, labels = _views()
    model(x_t, x_q, labels, momentum=0.99).loss.backward()
    assert model.online.backbone.conv1.weight.grad is not None
    assert model.predictor[0].weight.grad is not None
    assert all(p.grad is None for p in model.target.parameters())


def test_purity_is_the_fraction_of_neighbours_with_the_samples_label():
    model = _tiny_msf(k=4, bank_size=8)
    model(*_views(n=4)[:2], torch.tensor([0, 1, 0, 1]), momentum=0.99)  # bank rows 0-3
    labels = torch.tensor([0, 0, -1, 1])  # rows 4-7; the third sample's label is unknown
    out = model(*_views(n=4, seed=2)[:2], labels, momentum=0.99)
    written = [0, 1, 0, 1, 0, 0, -1, 1]  # the label of each bank row, as written above
    same = [written[row] == labels[i] for i in (0, 1, 3) for row in out.neighbours[i].tolist()]
    assert 0 < out.purity.item() < 1  # some neighbours share the label, some do not
    assert out.purity.item() == pytest.approx(sum(same) / len(same))
    unknown = model(*_views(n=4, seed=3)[:2], torch.full((4,), -1), momentum=0.99)
    assert unknown.purity.isnan()  # no known label: no purity
