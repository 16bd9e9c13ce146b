"""A training checkpoint whose fields have the wrong types is one `Error:` line naming the file and
the field, on `train --resume` and on `export` alike (training/checkpoint.py `check_checkpoint`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from msfkit.cli.main import cli
from msfkit.training.checkpoint import save_checkpoint
from msfkit.training.config import load_config
from tests.commands import in_process

MSFKIT = str(Path(sys.executable).with_name("msfkit"))
RUN = [
    "data=fashion-mnist", "limit=12", "arch=resnet18", "stem=cifar", "image_size=32", "batch_size=4",
    "epochs=1", "k=2", "bank_size=10", "workers=0", "threads=1", "precision=fp32", "knn_every=0",
]  # fmt: skip


def _write(out: Path, **fields) -> Path:
    """A checkpoint of a run in `out` whose fields are right except for `fields` (None: left out)."""
    state = {
        "model": {"online.backbone.conv1.weight": torch.zeros(1)},
        "optimizer": {"state": {}, "param_groups": []},
        "step": 1,
        "epoch": 1,
        "steps_per_epoch": 3,
        "config": load_config(overrides=[*RUN, f"out={out}"]).to_dict(),
        "metrics": {},
    }
    save_checkpoint(out / "checkpoint.pt", state)  # adds format, version and rng
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    for name, value in fields.items():
        if value is None:
            del ckpt[name]
        else:
            ckpt[name] = value
    torch.save(ckpt, out / "checkpoint.pt")
    return out / "checkpoint.pt"


CASES = [
    (dict(step="1"), "field 'step' is a str ('1'); expected an int >= 0"),
    (dict(step=True), "field 'step' is a bool (True); expected an int >= 0"),
    (dict(config=["k=2"]), "field 'config' is a list; expected a dict of config keys"),
    (dict(config={"k": "two"}), "field 'config': config: k must be int, not str ('two')"),
    (dict(model=None), "field 'model' is missing"),
    (dict(model=torch.zeros(3)), "field 'model' is a Tensor; expected a dict of tensors"),
    (dict(model={"w": [1, 2]}), "field 'model' is a dict; expected a dict of tensors"),
    (dict(optimizer=torch.zeros(1)), "field 'optimizer' is a Tensor; expected an optimizer state dict"),
    (dict(steps_per_epoch=0), "field 'steps_per_epoch' is a int (0); expected an int >= 1"),
    (dict(rng={"torch": "state"}), "field 'rng' is a dict; expected a dict with a 'torch' generator state"),
    (dict(metrics=[]), "field 'metrics' is a list; expected a dict"),
    (dict(version="1"), "field 'version' is a str ('1'); expected an int"),
]


@pytest.mark.parametrize("fields, message", CASES, ids=[str(c[0])[:40] for c in CASES])
def test_a_field_of_the_wrong_type_is_one_line_on_resume_and_on_export(tmp_path, fields, message):
    ckpt = _write(tmp_path, **fields)
    expected = f"Error: {ckpt}: training checkpoint {message}"
    runner = CliRunner()
    for args in (["train", "--resume", f"out={tmp_path}"], ["export", str(ckpt), str(tmp_path / "m")]):
        r = runner.invoke(cli, args)
        assert r.exit_code == 1 and r.output.splitlines() == [expected], (args, r.output)
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_a_model_that_does_not_fit_names_the_tensors_through_the_installed_command(tmp_path):
    ckpt = _write(tmp_path)  # the right types, but not the run's tensors
    field = f"Error: {ckpt}: training checkpoint field 'model'"
    r = subprocess.run([MSFKIT, "train", "--resume", f"out={tmp_path}", "-q"], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    [line] = r.stderr.splitlines()
    assert line.startswith(f"{field}: weights do not match the config: missing bank.labels, bank.ptr, ")
    assert line.endswith("; wrong shape online.backbone.conv1.weight (1,) != (64, 3, 3, 3)")
    r = in_process("export", ckpt, tmp_path / "m")  # a further case: the exit path is the one above
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"{field} (online backbone): weights do not match the config: missing bn1.bias, "
        "bn1.num_batches_tracked, bn1.running_mean, bn1.running_var, bn1.weight, layer1.0.bn1.bias "
        "(+113 more); "
        "wrong shape conv1.weight (1,) != (64, 3, 3, 3)"
    ], r.stderr
