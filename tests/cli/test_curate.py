"""`msfkit curate outliers|label-issues|select` through the installed command: outputs, exit codes and
one-line errors."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from msfkit.cli.curate import curate
from tests.msfkit.curate.planted import batch_among_clusters, clusters, labelled_store, with_far_points
from tests.msfkit.index_stores import write_vector_store

# every test here runs the installed command, a server or a Ray cluster: out of the quick loop
pytestmark = pytest.mark.slow


MSFKIT = str(Path(sys.executable).with_name("msfkit"))


def msfkit(*args) -> subprocess.CompletedProcess:
    return subprocess.run([MSFKIT, *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def far(tmp_path_factory):
    """(a store of 4 clusters with 2 far vectors planted, their rows)."""
    x, _ = clusters(25, 4, seed=0)
    x, rows = with_far_points(x, 2)
    return write_vector_store(tmp_path_factory.mktemp("far") / "s", x), rows


@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    """(a labelled store of 3 clusters, the rows whose label was flipped to another class)."""
    x, which = clusters(20, 3, seed=1)
    labels = np.array(["=coat", "bag", "shirt"])[which]
    rows = np.array([3, 27, 50])
    labels[rows] = labels[(rows + 20) % 60]
    return labelled_store(tmp_path_factory.mktemp("flipped") / "s", x, list(labels)), rows


def test_outliers_lists_the_planted_ones_first_as_csv_json_and_a_file(far, tmp_path):
    store, rows = far
    r = msfkit("curate", "outliers", store, "-k", "5", "--top", "3")
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(io.StringIO(r.stdout))
    assert list(table.columns) == ["rank", "row", "path", "label", "score", "in_degree"] and len(table) == 3
    assert sorted(table["row"][:2]) == list(rows)
    r = msfkit("curate", "outliers", store, "--top", "2", "--json")
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 0 and sorted(rec["row"] for rec in records) == list(rows)
    assert records[0]["label"] is None and Path(records[0]["path"]).is_absolute()
    out = tmp_path / "outliers.csv"
    r = msfkit("curate", "outliers", store, "-o", out)
    assert r.returncode == 0 and r.stderr.strip().endswith(f"20 outliers -> {out}")
    assert len(pd.read_csv(out)) == 20
    r = msfkit("curate", "outliers", store, "-o", out)
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"Error: {out}: already exists; remove it or pass --force"
    ]
    assert msfkit("curate", "outliers", store, "-o", out, "--force", "--top", "5").returncode == 0
    assert len(pd.read_csv(out)) == 5


def test_outliers_score_mahalanobis_through_the_command(tmp_path):
    """--score mahalanobis lists a tight batch of foreign vectors that --score knn ranks last; on fewer
    images than dimensions it is one line of error."""
    store, foreign = batch_among_clusters(tmp_path / "s")
    r = msfkit("curate", "outliers", store, "--score", "mahalanobis", "--top", "6", "--json")
    assert r.returncode == 0, r.stderr
    assert {json.loads(line)["row"] for line in r.stdout.splitlines()} == foreign
    small = write_vector_store(tmp_path / "small", clusters(3, 4, seed=0)[0])
    r = msfkit("curate", "outliers", small, "--score", "mahalanobis")
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"Error: {small}: 12 images of 16 dimensions; the mahalanobis score needs more images than "
        "dimensions (use --score knn)"
    ]


def test_outliers_draws_each_outlier_beside_its_neighbours_in_a_gallery(photo_index, tmp_path):
    index, _, _, _ = photo_index
    page = tmp_path / "outliers.html"
    r = msfkit("curate", "outliers", index, "--top", "3", "-k", "4", "--html", page)
    assert r.returncode == 0 and r.stderr.strip() == f"gallery -> {page}"
    text = page.read_text()
    assert text.count("<section>") == 3 and text.count('class="hit"') == 3 * 4
    assert "1. score " in text and "msfkit curate outliers" in text
    r = msfkit("curate", "outliers", index, "--html", page)
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"Error: {page}: already exists; remove it or pass --force"
    ]


def test_label_issues_finds_the_flips_and_neutralises_formula_labels_in_csv(flipped, tmp_path):
    store, rows = flipped
    r = msfkit("curate", "label-issues", store, "-k", "8")
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(io.StringIO(r.stdout))
    assert sorted(table["row"]) == list(rows)
    assert "'=coat" in set(table["label"]) | set(table["suggested"])  # the one CSV writer's quote
    r = msfkit("curate", "label-issues", store, "-k", "8", "--json")
    records = {rec["row"]: rec for rec in map(json.loads, r.stdout.splitlines())}
    assert records[3]["suggested"] == "=coat" and records[3]["label"] == "bag"  # exact in JSON


def test_label_issues_on_a_store_without_labels_is_one_error_line(far):
    store, _ = far
    r = msfkit("curate", "label-issues", store)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"Error: {store}: holds 0 label(s); label issues need at least 2 classes "
        "(embed a folder with one sub-folder per class)"
    ]


def test_select_writes_one_path_a_line_and_reports_the_radius(far, tmp_path):
    store, _ = far
    r = msfkit("curate", "select", store, "--budget", "4")
    assert r.returncode == 0, r.stderr
    paths = r.stdout.splitlines()
    assert len(paths) == 4 == len(set(paths)) and all(Path(p).is_absolute() for p in paths)
    assert r.stderr.startswith("coverage: 4 images, coverage radius ")
    out = tmp_path / "subset.txt"
    r = msfkit("curate", "select", store, "--budget", "6", "--strategy", "centres", "-o", out)
    assert r.returncode == 0 and len(out.read_text().splitlines()) == 6 and f"-> {out}" in r.stderr
    r = msfkit("curate", "select", store, "--budget", "3", "--strategy", "random", "--json", "--seed", "5")
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [sorted(rec) for rec in records] == [["label", "path", "row"]] * 3


def test_select_refuses_a_budget_it_cannot_meet_in_one_line(far):
    store, _ = far
    r = msfkit("curate", "select", store, "--budget", "1000")
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"Error: budget 1000: between 1 and the 102 images of {store}"
    ]
    r = msfkit("curate", "select", store)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "--budget" in r.stderr
    r = msfkit("curate", "outliers", Path(store).parent / "missing")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and r.stderr.startswith("Error: ")


def test_curate_on_the_real_photo_index(photo_index):
    index, _, photos, _ = photo_index
    r = msfkit("curate", "outliers", index, "-k", "3", "--top", "9", "--json")
    assert r.returncode == 0, r.stderr
    assert all(Path(json.loads(line)["path"]).parent == photos for line in r.stdout.splitlines())
    r = msfkit("curate", "select", index, "--budget", "21")
    assert r.returncode == 0 and len(set(r.stdout.splitlines())) == 21
    assert r.stderr.strip() == "coverage: 21 images, coverage radius 0.0000"


@pytest.mark.parametrize(("command", "module"), [("outliers", "outliers"), ("label-issues", "label_issues")])
def test_the_help_shows_the_library_default_k(command, module):
    default = importlib.import_module(f"msfkit.curate.{module}").DEFAULT_K
    r = CliRunner().invoke(curate, [command, "-h"], terminal_width=200)
    assert r.exit_code == 0 and f"Neighbours looked at per image.  [default: {default}]" in r.output


def test_the_outlier_scores_offered_are_the_librarys():
    from msfkit.cli.curate import OUTLIER_SCORES
    from msfkit.curate.outliers import SCORES

    assert OUTLIER_SCORES == SCORES
