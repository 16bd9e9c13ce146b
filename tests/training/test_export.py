"""`msfkit export` on checkpoints of the reference MSF code and on torchvision state dicts."""

from __future__ import annotations

import argparse
import os
import pickle

import pytest
import torch
from click.testing import CliRunner

import msfkit
from msfkit.cli.main import cli
from msfkit.models import MsfkitError, build_backbone, prediction_head, projection_head
from msfkit.training.export import export_checkpoint


def reference_checkpoint(path, arch: str, stem: str = "imagenet"):
    """A checkpoint laid out exactly as UMBCvision/MSF's train_msf.py saves it; returns both backbones."""
    torch.manual_seed(0)
    online, target = build_backbone(arch, stem), build_backbone(arch, stem)
    for net in (online, target):  # non-trivial BN statistics, so a wrong BN mapping would show
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    d = 512 if arch == "resnet18" else 2048
    state = {}
    for prefix, net in (("encoder_q.module.", online), ("encoder_t.module.", target)):
        state |= {prefix + k: v for k, v in net.state_dict().items()}
        state |= {f"{prefix}fc.{k}": v for k, v in projection_head(d).state_dict().items()}
    state |= {f"predict_q.module.{k}": v for k, v in prediction_head(d).state_dict().items()}
    state |= {
        "queue": torch.randn(64, d // 4),
        "labels": torch.zeros(64, dtype=torch.long),
        "queue_ptr": torch.zeros(1),
    }
    opt = argparse.Namespace(arch=arch, topk=5, mem_bank_size=64, momentum=0.99, weak_strong=True, epochs=200)
    torch.save(
        {"opt": opt, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 7}, path
    )
    return online.eval(), target.eval()


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
@pytest.mark.slow
def test_reference_checkpoint_exports_exactly_for_both_networks(tmp_path, arch):
    online, target = reference_checkpoint(tmp_path / "ckpt.pth.tar", arch)
    x = torch.randn(2, 3, 64, 64)
    for network, net in (("online", online), ("target", target)):
        export_checkpoint(tmp_path / "ckpt.pth.tar", tmp_path / network, network=network)
        enc = msfkit.load(str(tmp_path / network))
        with torch.no_grad():
            assert (enc(x) - net(x)).abs().max().item() <= 1e-5
        assert enc.config.arch == arch and enc.config.network == network
        assert (
            enc.config.provenance | {"k": 5, "bank_size": 64, "augmentation": "weak/strong"}
            == enc.config.provenance
        )
    assert enc.config.image_size == 224 and enc.config.provenance["epochs_trained"] == 7


@pytest.mark.slow
def test_cli_exports_reference_checkpoint_and_torchvision_state_dict(tmp_path):
    online, _ = reference_checkpoint(tmp_path / "ref.pth", "resnet18", stem="cifar")
    runner = CliRunner()
    r = runner.invoke(cli, ["export", str(tmp_path / "ref.pth"), str(tmp_path / "m"), "--json"])
    assert r.exit_code == 0, r.output
    assert '"stem": "cifar"' in r.output and '"image_size": 32' in r.output

    torch.save(
        {"state_dict": {"module." + k: v for k, v in online.state_dict().items()}}, tmp_path / "tv.pth"
    )
    r = runner.invoke(cli, ["export", str(tmp_path / "tv.pth"), str(tmp_path / "tv")])
    assert r.exit_code == 0, r.output
    x = torch.randn(2, 3, 32, 32)
    a, b = msfkit.load(str(tmp_path / "m")), msfkit.load(str(tmp_path / "tv"))
    assert torch.equal(a(x), b(x))


def test_target_network_of_a_plain_state_dict_is_refused(tmp_path):
    torch.save(build_backbone("resnet18").state_dict(), tmp_path / "tv.pth")
    with pytest.raises(MsfkitError, match="--network target needs"):
        export_checkpoint(tmp_path / "tv.pth", tmp_path / "out", network="target")


def test_foreign_layout_is_refused_naming_keys_found_and_layouts_expected(tmp_path):
    torch.save({"model": {"blocks.0.attn.qkv.weight": torch.zeros(3)}}, tmp_path / "vit.pth")
    r = CliRunner().invoke(cli, ["export", str(tmp_path / "vit.pth"), str(tmp_path / "out")])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "unknown checkpoint layout (keys: model)" in lines[0]
    assert "reference MSF checkpoint" in lines[0] and "torchvision ResNet state dict" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_file_that_is_not_a_checkpoint_is_refused_in_one_line(tmp_path, content):
    (tmp_path / "x.pth").write_bytes(content)
    r = CliRunner().invoke(cli, ["export", str(tmp_path / "x.pth"), str(tmp_path / "out")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "not a PyTorch checkpoint" in r.output or "refused" in r.output


class Exploit:
    """Pickles to a call of os.system: loading it without weights_only would run a command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_with_arbitrary_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    state = {"encoder_q.module." + k: v for k, v in build_backbone("resnet18").state_dict().items()}
    torch.save({"opt": Exploit(marker), "state_dict": state}, tmp_path / "evil.pth")
    with pytest.raises(MsfkitError, match="refused"):
        export_checkpoint(tmp_path / "evil.pth", tmp_path / "out")
    assert not marker.exists()
    # the same file really does run code when unpickled blindly: the test guards something real
    with open(tmp_path / "evil2.pkl", "wb") as f:
        pickle.dump(Exploit(marker), f)
    with open(tmp_path / "evil2.pkl", "rb") as f:
        pickle.load(f)
    assert marker.exists()
