"""bench/reproduce_small.py survives being stopped: a rerun of the same command continues an
unfinished run from its checkpoint, keeps what is finished, and ends where an unbroken run ends."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from msfkit.data.datasets import fashion_mnist_dir

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "reproduce_small.py"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_fashion_mnist():
    if not fashion_mnist_dir().is_dir():
        pytest.skip("Fashion-MNIST is not installed (scripts/setup.sh installs it)")


@pytest.fixture
def reproduce(monkeypatch, capsys):
    """`reproduce(out, *extra)` runs the script's `__main__` in this process (as `python
    bench/reproduce_small.py ARGS` would, without paying a fresh interpreter's torch import each
    time) and returns what it printed. The ImageNet stem (8 x 8 px after it at 32 px) and 64 images
    in batches of 16 (the same 4 steps an epoch): the resume logic under test, at little compute."""
    threads = torch.get_num_threads()  # the script sets them for its process: put back for later tests
    monkeypatch.chdir(REPO)

    def run(out: Path, *extra: str) -> str:
        argv = [
            str(SCRIPT), "--out", str(out), "--plot", str(out / "curve.png"), "--epochs", "2",
            "--minutes", "0", "--workers", "0", "--threads", "1", "--limit", "64", "--batch-size", "16",
            "--stem", "imagenet", "--knn-every-steps", "4", "--only", "msf", "--precision", "fp32", *extra,
        ]  # fmt: skip
        monkeypatch.setattr(sys, "argv", argv)
        capsys.readouterr()
        runpy.run_path(str(SCRIPT), run_name="__main__")
        return capsys.readouterr().out

    yield run
    torch.set_num_threads(threads)


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["results"]


def test_a_stopped_run_continues_to_the_unbroken_result(tmp_path, reproduce):
    clean, stopped = tmp_path / "clean", tmp_path / "stopped"
    reproduce(clean)

    first = reproduce(stopped, "--max-steps", "5")  # 8 steps in all: stopped inside the second epoch
    assert "stopped at step 5" in first
    assert "MSF w/s (k=5)" not in results(stopped)  # nothing recorded for an unfinished run
    assert (stopped / "k5" / "checkpoint.pt").exists()
    drawn = reproduce(stopped, "--replot")  # the unfinished run's curve is drawn, without a final score
    assert '"MSF w/s (k=5), in progress": [[0.0, 0.0,' in drawn and (stopped / "curve.png").stat().st_size

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

    other = ["--epochs", "3", "--limit", "256", "--batch-size", "64", "--knn-every-steps", "3"]
    with pytest.raises(SystemExit, match="other --epochs") as refused:  # another schedule, same --out
        reproduce(stopped, *other)
    assert isinstance(refused.value.code, str)  # a message: the interpreter exits 1 with it on stderr
    assert results(stopped)["MSF w/s (k=5)"] == got


def test_every_row_gets_the_linear_probe_even_one_scored_before_it(tmp_path, reproduce):
    """Raw pixels, random init and the trained run are scored by the fast linear probe too; a results.json
    written before the probe was added gets it on the next run, from the same features; --set keys
    reach the runs' config and are part of the schedule."""
    out = tmp_path / "run"
    printed = reproduce(out, "--set", "crop_scale=0.5")
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["crop_scale"] == 0.5
    scored = results(out)
    assert set(scored) == {"raw pixels", "random init", "MSF w/s (k=5)"}
    assert all(0 < row["linear"] <= 100 for row in scored.values())
    assert f"| {scored['raw pixels']['linear']:.2f} |" in printed  # the table's fast linear column

    for row in doc["results"].values():  # as an earlier version of the script left it
        del row["linear"], row["linear_lr"]
    (out / "results.json").write_text(json.dumps(doc))
    again = reproduce(out, "--set", "crop_scale=0.5")
    assert again.count("the fast linear probe, added") == 3 and "continuing" not in again
    assert {name: row["linear"] for name, row in results(out).items()} == {
        name: row["linear"] for name, row in scored.items()
    }
    with pytest.raises(SystemExit, match="other --set"):
        reproduce(out, "--set", "crop_scale=0.2")


def test_the_minutes_axis_leaves_out_pauses_and_shared_stretches():
    """The curve's unshared minutes: steps at the run's rate when it had the machine (10 steps a
    minute here), whatever a pause (30 minutes after step 50) or a shared CPU (half speed) added."""
    unshared_rate = runpy.run_path(str(SCRIPT))["unshared_rate"]
    steps = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]
    minutes = [0, 1, 2, 3, 3.9, 5, 36, 37, 38.1, 39, 40, 42, 44]  # paused after 50, shared from 100
    assert unshared_rate(steps, minutes) == pytest.approx(10.0)
    assert np.isnan(unshared_rate([0, 10, 10], [0.0, 0.0, 1.0]))  # no interval with both: no rate


def test_a_kept_results_json_outlives_its_run_folders(tmp_path, reproduce):
    """--record keeps a copy of results.json off the machine (the repository keeps one): written with
    OUT's, it is enough to continue and to redraw on a machine without OUT. Finished runs stay finished
    and keep their recorded curves; a row recorded without a curve is drawn by its final score; an
    older results.json in OUT is filled in from the copy; several seeds get a mean row."""
    import shutil

    out, kept = tmp_path / "run", tmp_path / "kept.json"
    printed = reproduce(out, "--seeds", "0", "1", "--record", str(kept))
    doc = json.loads(kept.read_text())
    assert doc == json.loads((out / "results.json").read_text())  # written together
    seeds = [doc["results"]["MSF w/s (k=5)"], doc["results"]["MSF w/s (k=5), seed 1"]]
    knn20 = [r["knn20"] for r in seeds]
    assert "| MSF w/s (k=5), mean of 2 seeds | - | - | - | " in printed
    assert f"{np.mean(knn20):.2f} ({min(knn20):.2f}-{max(knn20):.2f})" in printed

    kept_curve = doc["curves"]["MSF w/s (k=5)"]
    shutil.rmtree(out)  # a new machine: OUT and its run folders are gone
    del doc["curves"]["MSF w/s (k=5), seed 1"]  # a row recorded by hand, without its curve
    doc["results"]["MSF w/s (k=5), seed 1"]["unshared_min"] = 0.5
    kept.write_text(json.dumps(doc))
    with pytest.raises(SystemExit, match="nothing to draw"):
        reproduce(out, "--replot")
    out.mkdir()  # and an older results.json there, from before the runs finished: the copy fills it in
    older = {**doc, "results": {k: doc["results"][k] for k in ("raw pixels", "random init")}, "curves": {}}
    (out / "results.json").write_text(json.dumps(older))

    again = reproduce(out, "--seeds", "0", "1", "--record", str(kept))
    assert "baselines: kept" in again and again.count("finished in an earlier run, kept") == 2
    assert "continuing" not in again
    drawn = reproduce(out, "--replot", "--record", str(kept))
    curves = json.loads(drawn.splitlines()[0])
    assert curves == {"MSF w/s (k=5)": kept_curve}  # the recorded curve; seed 1 has none, drawn as its score
    assert (out / "curve.png").stat().st_size
    assert f"| {knn20[1]:.2f} |" in drawn  # seed 1's row, from the copy


def test_the_monitor_cadence_only_changes_the_curve(tmp_path, reproduce):
    """--knn-every-epochs N scores at every N-th epoch's end (and the run's last step) only; the
    monitor's cadence is not part of the schedule: the same final scores, and a rerun into the same
    OUT with another cadence keeps the finished run instead of refusing it."""
    every, sparse = tmp_path / "every", tmp_path / "sparse"
    reproduce(every, "--knn-every-steps", "0", "--knn-every-epochs", "1")
    reproduce(sparse, "--knn-every-steps", "0", "--knn-every-epochs", "2")

    def epochs_scored(out: Path) -> list[float]:
        curves = json.loads((out / "results.json").read_text())["curves"]
        return [point[1] for point in curves["MSF w/s (k=5)"]]

    assert epochs_scored(every) == [0.0, 1.0, 2.0]  # 4 steps an epoch: steps 0, 4 and 8
    assert epochs_scored(sparse) == [0.0, 2.0]  # epoch 1's end skipped
    scores = ("knn1", "knn20", "linear")
    want, got = results(every)["MSF w/s (k=5)"], results(sparse)["MSF w/s (k=5)"]
    assert [got[s] for s in scores] == [want[s] for s in scores]

    again = reproduce(sparse)  # the fixture's cadence: every 4 steps and every epoch
    assert "finished in an earlier run, kept" in again and "continuing" not in again
    assert results(sparse)["MSF w/s (k=5)"] == got
