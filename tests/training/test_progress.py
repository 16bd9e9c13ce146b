"""What a run says: an ETA that honours the time box, why it stopped and the exact command that
continues it (run here as printed), and where a resumed run starts."""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msfkit.training.progress import TimeBoxBar
from tests.commands import in_process

MSFKIT = str(Path(sys.executable).with_name("msfkit"))
# 12 Fashion-MNIST images in batches of 4: 3 steps per epoch, 6 in all
RUN = [
    "data=fashion-mnist", "limit=12", "arch=resnet18", "stem=cifar", "image_size=32", "batch_size=4",
    "epochs=2", "k=2", "bank_size=10", "workers=0", "threads=1", "precision=fp32", "knn_every=0",
]  # fmt: skip


def _seconds(text: str) -> int:
    minutes, seconds = text.split(":")
    return 60 * int(minutes) + int(seconds)


def test_the_eta_is_the_time_box_when_it_ends_the_run_first():
    bar = TimeBoxBar(total=1000, file=io.StringIO(), mininterval=0, smoothing=0)
    time.sleep(0.2)
    bar.update(1)  # about 5 steps/s: 999 steps left is over three minutes
    assert _seconds(bar.format_dict["eta"]) > 150
    bar.deadline = time.monotonic() + 30
    assert _seconds(bar.format_dict["eta"]) in (29, 30)
    assert "<00:29," in str(bar) or "<00:30," in str(bar)
    bar.deadline = time.monotonic() + 3600  # a box that ends after the epochs do: the bar's own estimate
    assert 150 < _seconds(bar.format_dict["eta"]) < 3000
    bar.close()


def _train(args: list[str], cwd: Path) -> str:
    r = subprocess.run([MSFKIT, "train", *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stderr


def _train_in_process(args: list[str], cwd: Path, monkeypatch) -> str:
    """`_train` through the same click group in this process: no interpreter and torch import to pay."""
    monkeypatch.chdir(cwd)
    r = in_process("train", *args)
    assert r.returncode == 0, r.stderr
    return r.stderr


def _continue_command(stderr: str, reason: str, step: int) -> list[str]:
    """The printed continue command as argv (the installed msfkit in place of `msfkit`)."""
    prefix = f"stopped by {reason} at step {step}/6; continue with: "
    [line] = [line for line in stderr.splitlines() if "stopped by" in line]
    assert line.startswith(prefix), line
    argv = shlex.split(line.removeprefix(prefix))
    assert argv[:3] == ["msfkit", "train", "--resume"]
    return argv[2:]


@pytest.mark.slow
def test_a_stopped_run_says_why_and_its_continue_command_resumes_it(tmp_path, monkeypatch):
    out = "runs/my run"  # relative to the working directory, with a space: quoted in the command
    first = _train_in_process([*RUN, f"out={out}", "max_minutes=0.0001", "-q"], tmp_path, monkeypatch)
    again = _continue_command(first, "max_minutes", 1)
    assert again == ["--resume", f"out={out}"]  # another time box of the same length

    second = _train_in_process([*again, "-q"], tmp_path, monkeypatch)
    assert "resumed from step 1/6 (epoch 1/2)" in second.splitlines()
    assert _continue_command(second, "max_minutes", 2) == again

    third = _train_in_process([*again, "max_minutes=0", "max_steps=4", "-q"], tmp_path, monkeypatch)
    assert "resumed from step 2/6 (epoch 1/2)" in third.splitlines()
    again = _continue_command(third, "max_steps", 4)
    assert again == ["--resume", f"out={out}", "max_steps=0"]  # the saved max_steps=4 would stop it at once

    last = _train([*again, "-q"], cwd=tmp_path)  # as printed, by the installed command
    assert "resumed from step 4/6 (epoch 2/2)" in last.splitlines()
    assert "stopped" not in last  # it ran to the end of its epochs
    from msfkit.training.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / out / "checkpoint.pt")["step"] == 6


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")],  # Ctrl-C; a scheduler's stop
)
@pytest.mark.slow
def test_ctrl_c_or_sigterm_says_which_step_the_checkpoint_holds_and_how_to_resume(tmp_path, sig, code, word):
    import signal

    from msfkit.training.checkpoint import load_checkpoint

    run = tmp_path / "run"
    args = [*RUN, "epochs=400", f"out={run}", "save_every_steps=1", "-q"]  # far more steps than it gets
    # A job started in the background (nohup, CI runners) inherits SIGINT ignored, and Python then
    # leaves it so: the child gets the default back, as in a terminal.
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen([MSFKIT, "train", *args], stderr=subprocess.PIPE, text=True, preexec_fn=restore)
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.02)
    proc.send_signal(getattr(signal, sig))
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == code and "Traceback" not in stderr, stderr  # 128 + the signal
    saved = load_checkpoint(run / "checkpoint.pt")["step"]
    [line] = [line for line in stderr.splitlines() if line.startswith(f"{word} at step")]
    assert line.endswith(
        f"/1200; the checkpoint holds step {saved}; continue with: msfkit train --resume out={run}"
    )


@pytest.mark.slow
def test_bf16_asked_for_on_a_cpu_that_only_emulates_it_says_so_in_one_line(tmp_path, monkeypatch):
    from msfkit.models.runtime import cpu_has_fast_bf16

    bf16_run = [*RUN, f"out={tmp_path / 'run'}", "precision=bf16", "max_steps=1", "-q"]
    stderr = _train_in_process(bf16_run, tmp_path, monkeypatch)  # this file runs the installed command
    warnings = [line for line in stderr.splitlines() if "no native bf16" in line]
    assert len(warnings) == (0 if cpu_has_fast_bf16() else 1), stderr
    auto_run = [*RUN, f"out={tmp_path / 'auto'}", "precision=auto", "max_steps=1", "-q"]
    auto = _train_in_process(auto_run, tmp_path, monkeypatch)
    assert "no native bf16" not in auto
