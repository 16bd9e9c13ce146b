"""`msfkit dedup --against`, `--groups centre` and `--keep-fraction`: outputs, exit codes and one-line
refusals, through the click group and the installed command."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from msfkit.cli.main import cli
from tests.msfkit.retrieval.test_leaks import LEAKED, planted_splits

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def msfkit(*args) -> subprocess.CompletedProcess:
    return subprocess.run([MSFKIT, *map(str, args)], capture_output=True, text=True)


@pytest.mark.slow
def test_fail_on_leak_exits_1_with_the_leaks_listed_and_0_without(tmp_path):
    train, test, _, _ = planted_splits(tmp_path)
    r = msfkit("dedup", train, "--against", test, "--threshold", "0.95", "--fail-on-leak")
    assert r.returncode == 1, r.stderr
    table = pd.read_csv(io.StringIO(r.stdout))
    assert list(table.columns) == ["row", "path", "label", "match_row", "match", "match_label", "score"]
    assert table["row"].tolist() == LEAKED and table["match_row"].tolist() == list(range(300, 305))
    assert r.stderr.strip().splitlines()[-1] == f"5 TEST images with a near copy (>= 0.9500) in {train}"
    r = run("dedup", train, "--against", test, "--threshold", "0.9999", "--fail-on-leak")  # in this process
    assert r.exit_code == 0 and pd.read_csv(io.StringIO(r.stdout)).empty
    r = run("dedup", train, "--against", test, "--threshold", "0.95")  # a list, no check asked for
    assert r.exit_code == 0 and len(pd.read_csv(io.StringIO(r.stdout))) == 5


@pytest.mark.slow
def test_vectors_of_two_models_are_refused_in_one_line(tmp_path):
    train, test, _, _ = planted_splits(tmp_path, model={"name": "other", "fingerprint": "f00"})
    r = msfkit("dedup", train, "--against", test, "--fail-on-leak")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"Error: TRAIN {train} and TEST {test} come from different models: fingerprint synthetic and "
        "other (fingerprint f00); embed both with one model"
    ]


def test_leaks_as_json_lines_a_file_and_a_gallery(photo_index, tmp_path):
    index, store, _, _ = photo_index
    r = run("dedup", index, "--against", store, "--threshold", "0.96", "--json")
    assert r.exit_code == 0, r.output
    leaks = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(leaks) == 21 and all(x["score"] >= 0.96 for x in leaks)  # every image is its own copy
    out, html, grid = tmp_path / "leaks.csv", tmp_path / "leaks.html", tmp_path / "leaks.png"
    r = run(
        "dedup", index, "--against", store, "--threshold", "0.96", "-o", out, "--html", html, "--grid", grid
    )
    assert r.exit_code == 0 and len(pd.read_csv(out)) == 21
    assert html.read_text().count("<figure") == 42  # each TEST image beside its match
    assert Image.open(grid).size[1] > Image.open(grid).size[0]  # 21 lines of two pictures


def test_centre_groups_and_a_keep_fraction_through_the_command(photo_index):
    index, _, _, _ = photo_index
    r = run("dedup", index, "--threshold", "0.96", "--groups", "centre")
    assert r.exit_code == 0, r.output
    table = pd.read_csv(io.StringIO(r.stdout))
    assert list(table.columns) == ["group", "size", "row", "path", "label", "score", "centre"]
    assert set(table["centre"]) <= set(table["row"]) and (table["score"] >= 0.96).all()
    r = run("dedup", index, "--keep-fraction", "0.6", "--paths")  # 13 of 21 stay: 8 of the 9 copies go
    assert r.exit_code == 0, r.output
    removed = [Path(p).stem for p in r.stdout.splitlines()]
    assert len(removed) == 8 and all(name.endswith(("_q40", "_half", "_crop")) for name in removed)


def test_options_that_do_not_go_together_are_refused_before_any_work(tmp_path):
    for args, message in (
        (("--fail-on-leak",), "--fail-on-leak checks --against TEST"),
        (("--against", tmp_path, "--keep", "first"), "--against lists leaks"),
        (("--against", tmp_path, "--groups", "centre"), "--against lists leaks"),
        (("--keep-fraction", "0.5", "--threshold", "0.9"), "--keep-fraction is a size budget"),
        (("--keep-fraction", "0.5", "--groups", "centre"), "--keep-fraction is a size budget"),
        (
            (
                "--keep-fraction",
                "0",
            ),
            "0<x<=1",
        ),
    ):
        r = run("dedup", tmp_path / "nowhere", *args)
        assert r.exit_code == 2 and message in r.output, (args, r.output)
