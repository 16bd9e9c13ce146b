# ruff: noqa: E501 - parameter tables read best one case per line
"""training/config_checks.py: a training config's numbers in range, YAML without aliases, and a
resumed run's metrics.csv never truncated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from msfkit.models.errors import MsfkitError
from msfkit.training.config import load_config
from tests.commands import in_process
from tests.training.run_checkpoints import write_run_checkpoint

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


@pytest.mark.parametrize(
    ("override", "message"),
    [("lr=-0.1", "lr must be a finite number > 0.0"), ("lr=nan", "lr must be a finite number > 0.0, not nan"),
     ("momentum=1.5", "momentum must be a finite number >= 0.0 and <= 1.0"), ("weight_decay=-1", "weight_decay"),
     ("workers=-1", "workers must be"), ("threads=-4", "threads must be"), ("log_every=0", "log_every must be")],
)  # fmt: skip
def test_a_value_out_of_range_is_one_error_naming_the_key(override, message):
    with pytest.raises(MsfkitError, match=message):
        load_config(overrides=[override])
    r = in_process("train", override, "--show-config")
    assert r.returncode == 1 and message in r.stderr


@pytest.mark.slow
def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")  # 9**9 strings if expanded
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    r = subprocess.run([MSFKIT, "train", "-c", tmp_path / "bomb.yaml", "--show-config"], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1 and "aliases (*a) are not allowed" in r.stderr


def test_a_resume_drops_later_rows_atomically_and_appends(tmp_path):
    from msfkit.training.monitor import METRICS, RunLog

    run = tmp_path / "run"
    log = RunLog(run, 0, True)
    for step in (10, 20, 30):
        log.write({"step": step, "epoch": 1, "loss": 0.5})
    log.close()
    resumed = RunLog(run, 20, True)  # the checkpoint was at step 20: row 30 goes, 10 and 20 stay
    resumed.write({"step": 21, "epoch": 1, "loss": 0.4})
    resumed.close()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0] == ",".join(METRICS) and [r.split(",")[0] for r in rows[1:]] == ["10", "20", "21"]
    RunLog(run, 21, True).close()  # opened and killed at once: the history is still there
    assert (run / "metrics.csv").read_text().splitlines() == rows


@pytest.mark.parametrize("old_rows", [[], ["10,1,0.5"]])
def test_an_older_header_is_rewritten_as_this_ones_even_over_no_rows(tmp_path, old_rows):
    from msfkit.training.monitor import METRICS, RunLog

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("\n".join(["step,epoch,loss", *old_rows]) + "\n")  # an older msfkit's
    log = RunLog(run, 20, True)
    log.write({"step": 21, "epoch": 1, "loss": 0.4, "knn_top1": 70.0})
    log.close()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0] == ",".join(METRICS)
    assert [r.split(",")[0] for r in rows[1:]] == ["10"] * len(old_rows) + ["21"]
    assert all(len(r.split(",")) == len(METRICS) for r in rows)


@pytest.mark.slow
def test_resume_names_the_key_that_cannot_change(tmp_path):
    run = write_run_checkpoint(tmp_path / "run").parent  # a run's checkpoint: resnet18, cifar stem, bank 8
    r = subprocess.run(
        [MSFKIT, "train", "--resume", f"out={run}", "arch=resnet34", "-q"], capture_output=True, text=True
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "--resume: arch cannot change" in r.stderr
    for change, key in (("bank_size=32", "bank_size"), ("stem=imagenet", "stem")):
        r = in_process("train", "--resume", f"out={run}", change, "-q")
        assert r.returncode == 1, r.stderr
        assert f"--resume: {key} cannot change" in r.stderr
