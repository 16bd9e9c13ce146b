"""`msfkit train --help-keys`: every config key, with its real type and default and the meaning
its own comment in training/config.py gives."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from msfkit.training.config import TrainConfig

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


@pytest.mark.slow
def test_help_keys_lists_every_key_with_type_default_and_meaning():
    r = subprocess.run([MSFKIT, "train", "--help-keys"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["KEY", "TYPE", "DEFAULT", "MEANING"]
    rows = {}
    for line in lines[1:]:
        if not line.startswith("#"):
            name, type_, default, meaning = line.split(None, 3)
            rows[name] = (type_, json.loads(default), meaning)
    fields = dataclasses.fields(TrainConfig)
    assert list(rows) == [f.name for f in fields]  # every key, in the config's order
    for f in fields:  # every field has a comment on its line; type and default are the dataclass's
        type_, default, meaning = rows[f.name]
        assert (type_, default) == (f.type, f.default) and type(default) is type(f.default), f.name
        assert len(meaning) > 8, f"{f.name}: no comment on its line in training/config.py"
    assert rows["k"][2] == "neighbours in the mean shift; k = 1 is asymmetric BYOL"
    assert rows["weight_decay"][1] == 1e-4 and rows["channels_last"][1] is True
    sections = [line for line in lines if line.startswith("# ")]
    assert sections[:2] == ["# data", "# network"] and "# optimisation" in sections
