"""bench/reproduce_small.py survives being stopped: a rerun of the same command continues an
unfinished run from its checkpoint, keeps what is finished, and ends where an unbroken run ends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from msfkit.data.datasets import fashion_mnist_dir

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "reproduce_small.py"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_fashion_mnist():
    if not fashion_mnist_dir().is_dir():
        pytest.skip("Fashion-MNIST is not installed (scripts/setup.sh installs it)")


def reproduce(out: Path, *extra: str) -> str:
    cmd = [
        sys.executable, str(SCRIPT), "--out", str(out), "--plot", str(out / "curve.png"), "--epochs", "2",
        "--minutes", "0", "--workers", "0", "--threads", "1", "--limit", "128", "--batch-size", "32",
        "--knn-every-steps", "4", "--only", "msf", "--precision", "fp32", *extra,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["results"]


def test_a_stopped_run_continues_to_the_unbroken_result(tmp_path):
    clean, stopped = tmp_path / "clean", tmp_path / "stopped"
    reproduce(clean)

    first = reproduce(stopped, "--max-steps", "5")  # 8 steps in all: stopped inside the second epoch
    assert "stopped at step 5" in first
    assert "MSF w/s (k=5)" not in results(stopped)  # nothing recorded for an unfinished run
    assert (stopped / "k5" / "checkpoint.pt").exists()

    second = reproduce(stopped)
    assert "continuing" in second and "baselines: kept" in second
    want, got = results(clean)["MSF w/s (k=5)"], results(stopped)["MSF w/s (k=5)"]
    assert got["steps"] == want["steps"] == 8
    assert (got["knn1"], got["knn20"]) == (want["knn1"], want["knn20"])  # train's exact resume
    scores = ("knn1", "knn20", "knn20_subset")
    before, after = results(clean)["random init"], results(stopped)["random init"]
    assert [after[s] for s in scores] == [before[s] for s in scores]

    third = reproduce(stopped)  # finished: kept, not trained again
    assert "finished in an earlier run, kept" in third and "continuing" not in third
    assert results(stopped)["MSF w/s (k=5)"] == got

    other = [
        sys.executable,
        str(SCRIPT),
        "--out",
        str(stopped),
        "--epochs",
        "3",
        "--limit",
        "256",
        "--batch-size",
        "64",
        "--knn-every-steps",
        "3",
        "--precision",
        "fp32",
    ]
    refused = subprocess.run(other, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert refused.returncode != 0 and "other --epochs" in refused.stderr  # another schedule, same --out
    assert results(stopped)["MSF w/s (k=5)"] == got
