# ruff: noqa: E501 - command lines read best unbroken
"""`msfkit models init` and `models list` through the installed command: a baseline folder that
loads and embeds; the encoders of the Hugging Face cache and of folders, with their card results."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import msfkit
from msfkit.eval.report import write_card
from tests.commands import in_process
from tests.training.run_checkpoints import write_run_checkpoint

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


def run(*args, env=None):
    return subprocess.run([MSFKIT, *map(str, args)], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_init_writes_the_same_random_baseline_for_the_same_seed(tmp_path):
    a = run("models", "init", "resnet18", tmp_path / "a", "--stem", "cifar", "--image-size", "32", "--json")
    b = in_process(
        "models", "init", "resnet18", tmp_path / "b", "--stem", "cifar", "--image-size", "32", "--seed", "0"
    )
    c = in_process(
        "models", "init", "resnet18", tmp_path / "c", "--stem", "cifar", "--image-size", "32", "--seed", "1"
    )
    assert a.returncode == b.returncode == c.returncode == 0, a.stderr
    info = json.loads(a.stdout)
    ea, eb, ec = (msfkit.load(tmp_path / n) for n in "abc")
    assert info["fingerprint"] == ea.fingerprint == eb.fingerprint != ec.fingerprint
    assert ea.config.provenance["method"] == "random init" and ea.config.resize == 32  # whole, as trained
    again = in_process("models", "init", "resnet18", tmp_path / "a")
    assert again.returncode == 1
    assert again.stderr == f"Error: {tmp_path / 'a'}: already exists; remove it or pass --force\n"


@pytest.mark.slow
@pytest.mark.parametrize("size", [32, 96])
def test_init_makes_the_twin_of_a_trained_model_with_the_same_settings(tmp_path, size):
    trained, twin = tmp_path / "trained", tmp_path / "twin"
    assert in_process("export", write_run_checkpoint(tmp_path / "run", size).parent, trained).returncode == 0
    init = in_process("models", "init", "resnet18", twin, "--stem", "cifar", "--image-size", size)
    assert init.returncode == 0, init.stderr
    configs = [json.loads((folder / "config.json").read_text()) for folder in (trained, twin)]
    assert (
        configs[0].pop("provenance")["method"] == "msf"
        and configs[1].pop("provenance")["method"] == "random init"
    )
    assert configs[0] == configs[1] and configs[0]["image_size"] == size


@pytest.mark.slow
def test_init_from_torchvision_weights_keeps_them_and_refuses_a_pickle(tmp_path):
    import torchvision

    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, tmp_path / "r18.pth")
    r = in_process("models", "init", "resnet18", tmp_path / "tv", "--weights", tmp_path / "r18.pth")
    assert r.returncode == 0, r.stderr
    enc = msfkit.load(tmp_path / "tv")
    torch.testing.assert_close(enc.backbone.state_dict()["conv1.weight"], state["conv1.weight"])
    torch.save({"model": Fraction(1, 3)}, tmp_path / "evil.pth")  # needs a class unpickled
    bad = run("models", "init", "resnet18", tmp_path / "evil", "--weights", tmp_path / "evil.pth")
    assert (
        bad.returncode == 1 and "not a state dict read safely" in bad.stderr and "Traceback" not in bad.stderr
    )


@pytest.mark.slow
def test_list_shows_cached_models_and_folders_with_their_results(tmp_path, tiny_model_dir, monkeypatch):
    hf_home = tmp_path / "hf"
    snapshot = hf_home / "hub" / "models--org--tiny" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_model_dir, snapshot)
    (hf_home / "hub" / "models--org--tiny" / "refs").mkdir()
    (hf_home / "hub" / "models--org--tiny" / "refs" / "main").write_text("a" * 40)
    folder = tmp_path / "mine"
    shutil.copytree(tiny_model_dir, folder)
    report = {"results": [{"protocol": "knn-msf", "k": 20, "temperature": None, "n_train": 60, "n_val": 10,
                           "top1": 81.25, "top5": None}],
              "source": {"train": "t", "val": "v"}, "msfkit": "0",
              "model": {"fingerprint": msfkit.load(folder).fingerprint}}  # fmt: skip
    write_card(folder, report)
    env = {**dict(__import__("os").environ), "HF_HOME": str(hf_home)}
    r = run("models", "list", folder, "--json", env=env)
    assert r.returncode == 0, r.stderr
    models = json.loads(r.stdout)["models"]
    assert [m["model"] for m in models] == [f"org/tiny@{'a' * 12}", str(folder)]
    assert {m["arch"] for m in models} == {"resnet18"} and {m["dim"] for m in models} == {512}
    assert models[0]["results"] == [] and models[1]["results"] == [
        {"protocol": "knn-msf", "k": "20", "top1": 81.25}
    ]
    text = run("models", "list", folder, env=env).stdout
    assert "best knn-msf top-1 81.25" in text
    not_model = run("models", "list", tmp_path, env=env)
    assert not_model.returncode == 1 and "not an msfkit model folder" in not_model.stderr


def test_info_reads_no_torch_and_gives_the_loaders_fingerprint(tiny_model_dir):
    code = (
        "import sys; from msfkit.cli.main import main; sys.argv = ['msfkit', 'models', 'info', sys.argv[1], '--json']\n"
        "try:\n    main()\nfinally:\n    print('torch' in sys.modules, file=sys.stderr)"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tiny_model_dir)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "False", r.stderr
    info = json.loads(r.stdout)
    enc = msfkit.load(tiny_model_dir)
    assert info["fingerprint"] == enc.fingerprint
    assert info["parameters"] == sum(p.numel() for p in enc.parameters())
