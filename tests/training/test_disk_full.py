"""A full disk during `train` and `export` is one line naming what could not be written; the earlier
checkpoint stays whole and no temporary file is left behind. On a real 1 MB tmpfs (the shared
`tiny_disk` fixture of tests/msfkit/test_disk_full.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from msfkit.cli.main import cli
from msfkit.models.errors import MsfkitError
from msfkit.training.checkpoint import save_checkpoint
from tests.commands import in_process
from tests.msfkit.test_disk_full import tiny_disk  # noqa: F401 - the fixture, shared

MSFKIT = str(Path(sys.executable).with_name("msfkit"))
# max_steps=1: one step, then the checkpoint
RUN = [
    "data=fashion-mnist", "limit=12", "arch=resnet18", "stem=cifar", "image_size=32", "batch_size=4",
    "epochs=1", "k=2", "bank_size=10", "workers=0", "threads=1", "precision=fp32", "knn_every=0", "-q",
    "max_steps=1",
]  # fmt: skip


def _error(*args, installed: bool = True) -> str:
    """The error line of the installed command (or of the click group in this process)."""
    if installed:
        r = subprocess.run([MSFKIT, *map(str, args)], capture_output=True, text=True)
    else:
        r = in_process(*args)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    return r.stderr.strip().splitlines()[-1]


def _temporaries(disk: Path) -> list[Path]:
    return [p for p in disk.rglob("*") if ".tmp" in p.name]


@pytest.mark.slow
def test_train_and_export_on_a_full_disk_are_one_line_and_leave_no_temporary(tmp_path, tiny_disk):  # noqa: F811
    run = tiny_disk / "run"  # a ResNet18 checkpoint is some 100 MB: the first save fails
    assert _error("train", *RUN, f"out={run}") == (
        f"Error: disk full: cannot write {run / 'checkpoint.pt'}; free space there and run again"
    )
    assert not (run / "checkpoint.pt").exists() and _temporaries(tiny_disk) == []

    done = tmp_path / "done"  # a real run elsewhere, exported onto the full disk
    assert CliRunner().invoke(cli, ["train", *RUN, f"out={done}"]).exit_code == 0
    model = tiny_disk / "model"
    assert _error("export", done, model, installed=False) == (
        f"Error: disk full: cannot write {model / 'model.safetensors'}; free space there and run again"
    )
    assert not model.exists() and _temporaries(tiny_disk) == []

    with pytest.raises(OSError), open(tiny_disk / "filler", "wb", buffering=0) as f:
        while True:  # the rest of the 1 MB
            f.write(b"\0" * 4096)
    assert _error("train", *RUN, f"out={tiny_disk / 'full'}", installed=False) == (
        f"Error: disk full: cannot write {tiny_disk / 'full' / 'metrics.csv'}; free space there and run again"
    )


def test_a_checkpoint_that_does_not_fit_leaves_the_earlier_one_whole(tiny_disk):  # noqa: F811
    path = tiny_disk / "run" / "checkpoint.pt"
    save_checkpoint(path, {"model": {"w": torch.arange(10.0)}, "step": 1})
    before = path.read_bytes()
    with pytest.raises(
        MsfkitError, match=rf"^disk full: cannot write {path}; free space there and run again$"
    ):
        save_checkpoint(path, {"model": {"w": torch.zeros(600_000)}, "step": 2})  # 2.4 MB
    assert path.read_bytes() == before and _temporaries(tiny_disk) == []
    earlier = torch.load(path, weights_only=True)
    assert earlier["step"] == 1 and torch.equal(earlier["model"]["w"], torch.arange(10.0))
