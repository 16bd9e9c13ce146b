"""DDP under torchrun (2 processes, gloo): the bank is global and identical on every rank.

BatchNorm layers are put in eval mode for the step check: per-process BN normalises each half
batch by its own statistics, so only with per-sample normalisation is "2 processes x 4 images"
the same computation as "1 process x 8 images"; everything else (all-gather order, DDP gradient
averaging, EMA, enqueue, search) is the code under test.
"""

from __future__ import annotations

import runpy
import subprocess
import sys

import pytest
import torch

import msfkit

WORKER = """
import sys
from pathlib import Path

import torch
from torch import nn

from msfkit.training.config import load_config
from msfkit.runtime import Ranks
from msfkit.training.distributed import wrap_ddp
from msfkit.training.loop import train
from msfkit.training.msf import MSF

out = Path(sys.argv[1])
d = Ranks.from_env("cpu")
torch.manual_seed(0)
model = MSF("resnet18", "cifar", k=2, bank_size=10)
for m in model.modules():
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        m.eval()
net = wrap_ddp(model, d, torch.device("cpu"), sync_bn=False)
opt = torch.optim.SGD([*model.online.parameters(), *model.predictor.parameters()], lr=0.5, momentum=0.9)
local = 8 // d.world
for step in range(2):
    g = torch.Generator().manual_seed(step)
    x_t, x_q = torch.randn(8, 3, 32, 32, generator=g), torch.randn(8, 3, 32, 32, generator=g)
    labels = torch.arange(8) + 8 * step
    part = slice(d.rank * local, (d.rank + 1) * local)
    loss = net(x_t[part], x_q[part], labels[part], 0.99).loss
    opt.zero_grad()
    loss.backward()
    opt.step()
torch.save({"bank": model.bank.state_dict(), "online": model.online.state_dict()}, out / f"rank{d.rank}.pt")
if d.world > 1:  # the real loop under torchrun: rank 0 alone writes the run folder
    run = ["data=fashion-mnist", "limit=16", "arch=resnet18", "stem=cifar", "image_size=32", "batch_size=8",
           "epochs=1", "k=2", "bank_size=12", "workers=0", "knn_every=0", "log_every=1", f"out={out / 'run'}"]
    model_dir = train(load_config(overrides=run), progress=False)
    (out / f"rank{d.rank}.txt").write_text(str(model_dir))
"""


@pytest.mark.slow
def test_two_process_bank_is_identical_on_both_ranks_and_equals_one_process(tmp_path, monkeypatch):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    ddp_dir.mkdir()
    single_dir.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run([*cmd, str(worker), str(ddp_dir)], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    monkeypatch.setattr(sys, "argv", ["worker.py", str(single_dir)])
    runpy.run_path(str(worker), run_name="__main__")  # the same global batches in one process

    r0, r1 = (torch.load(ddp_dir / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    one = torch.load(single_dir / "rank0.pt", weights_only=True)
    for key in ("vectors", "labels", "ptr"):
        assert torch.equal(r0["bank"][key], r1["bank"][key]), key
    # 16 rows into 10 slots, in rank order within each step: labels 10..15 then 6..9
    assert r0["bank"]["labels"].tolist() == [10, 11, 12, 13, 14, 15, 6, 7, 8, 9]
    assert torch.equal(r0["bank"]["labels"], one["bank"]["labels"])
    assert torch.equal(r0["bank"]["ptr"], one["bank"]["ptr"])
    assert torch.allclose(r0["bank"]["vectors"], one["bank"]["vectors"], atol=1e-5)
    for key, value in one["online"].items():
        assert torch.allclose(r0["online"][key].float(), value.float(), atol=1e-5), key

    assert (ddp_dir / "rank0.txt").read_text() == str(ddp_dir / "run" / "model")
    assert (ddp_dir / "rank1.txt").read_text() == "None"
    assert msfkit.load(str(ddp_dir / "run" / "model")).config.provenance["steps"] == 2
    assert (ddp_dir / "run" / "metrics.csv").read_text().count("\n") == 3  # header + steps 1, 2, once each
