"""`msfkit index`, `msfkit search`, `msfkit dedup` through the click group: outputs and one-line errors."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from msfkit.cli.main import cli
from tests.msfkit.index_stores import clustered_vectors, write_vector_store


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_index_builds_and_summarises(photo_index, tmp_path):
    _, store, _, _ = photo_index
    r = run("index", store, "-o", tmp_path / "ix", "--type", "hnsw")
    assert r.exit_code == 0, r.output
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"{tmp_path / 'ix'}: 21 x 512 vectors, IDMap,HNSW32,Flat (efSearch=")
    assert "recall@10" in r.stdout and "held-out queries" in r.stdout
    r = run("index", store, "-o", tmp_path / "ix")
    assert r.exit_code == 1 and r.output.strip().splitlines() == [
        f"Error: {tmp_path / 'ix'}: already exists; remove it or pass --force"
    ]
    r = run("index", store, "-o", tmp_path / "ix", "--force", "--type", "flat", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["type"] == "flat"


def test_index_add_extends_an_index(tmp_path):
    x = clustered_vectors(600, 16, 5, seed=0)
    a = write_vector_store(tmp_path / "a", x[:400], prefix="a")
    b = write_vector_store(tmp_path / "b", x[400:], prefix="b")
    assert run("index", a, "-o", tmp_path / "ix", "--type", "flat").exit_code == 0
    r = run("index", "--add", tmp_path / "ix", b, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["count"] == 600 and len(info["sources"]) == 2
    r = run("index", "--add", tmp_path / "ix", b)
    assert r.exit_code == 1 and "already in the index" in r.output and len(r.output.splitlines()) == 1
    assert run("index", a).exit_code == 2  # neither -o nor --add


def test_search_prints_a_table_per_query(photo_index):
    index, _, photos, _ = photo_index
    r = run("search", index, photos / "bear.jpg", "-k", "2")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[:3] == [
        f"query: {photos / 'bear.jpg'}",
        "  rank    score  path",
        f"     1   1.0000  {photos / 'bear.jpg'}",
    ]
    assert len(lines) == 4 and lines[3].startswith("     2   0.99")


@pytest.mark.slow
def test_search_json_lines_and_csv_hold_the_same_results(photo_index):
    index, store, photos, _ = photo_index
    queries = [index, photos / "dusk.jpg", f"{store}:0", "-k", "3"]
    rj = run("search", *queries, "--json")
    rc = run("search", *queries, "--csv")
    assert rj.exit_code == rc.exit_code == 0
    records = [json.loads(line) for line in rj.stdout.splitlines()]
    table = pd.read_csv(io.StringIO(rc.stdout))
    assert len(records) == len(table) == 6
    assert [r["path"] for r in records] == table["path"].tolist()
    assert [r["rank"] for r in records] == [1, 2, 3, 1, 2, 3]


@pytest.mark.slow
def test_search_draws_a_contact_sheet_and_a_gallery(photo_index, tmp_path):
    from msfkit.retrieval.render import sheet_size

    index, _, photos, _ = photo_index
    r = run(
        "search",
        index,
        photos / "bear.jpg",
        photos / "camera.jpg",
        "-k",
        "5",
        "--grid",
        tmp_path / "s.png",
        "--html",
        tmp_path / "g.html",
    )
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "s.png").size == sheet_size(2, 5)
    assert (tmp_path / "g.html").read_text().count("<img ") == 2 * 6


@pytest.mark.slow
def test_unreadable_queries_are_one_line_each_and_the_rest_answered(photo_index, tmp_path):
    index, _, photos, _ = photo_index
    (tmp_path / "bad.jpg").write_text("not an image")
    r = run("search", index, tmp_path / "bad.jpg", photos / "bear.jpg", "-k", "1")
    assert r.exit_code == 0
    assert r.stderr.splitlines() == [f"skipped query {tmp_path / 'bad.jpg'}: not an image (text file)"]
    assert f"query: {photos / 'bear.jpg'}" in r.stdout
    r = run("search", index, tmp_path / "bad.jpg")
    assert r.exit_code == 1 and r.stderr.splitlines()[-1] == "Error: no query could be read"


def test_another_model_and_a_damaged_index_are_one_line_errors(photo_index, tiny_model_dir, tmp_path):
    index, _, photos, _ = photo_index
    r = run("search", index, photos / "bear.jpg", "-m", tiny_model_dir)
    assert r.exit_code == 1 and len(r.output.splitlines()) == 1
    assert f"Error: the query model and the index {index} come from different models: " in r.output
    r = run("search", photos, photos / "bear.jpg")
    assert r.exit_code == 1 and r.output.startswith("Error: ") and "not an msfkit index folder" in r.output


def test_dedup_writes_groups_as_csv_or_json(photo_index, tmp_path):
    index, _, _, _ = photo_index
    r = run("dedup", index, "--threshold", "0.96")
    assert r.exit_code == 0, r.output
    table = pd.read_csv(io.StringIO(r.stdout))
    assert list(table.columns) == ["group", "size", "row", "path", "label", "score"]
    assert table["group"].nunique() == 3 and len(table) == 12
    r = run("dedup", index, "--threshold", "0.96", "--json")
    assert [json.loads(line)["path"] for line in r.stdout.splitlines()] == table["path"].tolist()
    r = run("dedup", index, "-o", tmp_path / "d.csv")
    assert r.exit_code == 0 and pd.read_csv(tmp_path / "d.csv").shape[1] == 6


def test_paths_below_the_current_folder_are_shown_relative(photo_index, monkeypatch):
    index, _, photos, _ = photo_index
    monkeypatch.chdir(photos.parent)
    r = run("search", index, photos / "bear.jpg", "-k", "1")
    assert r.stdout.splitlines()[0] == f"query: {photos.name}/bear.jpg"
    assert r.stdout.splitlines()[2] == f"     1   1.0000  {photos.name}/bear.jpg"


# the costly imports a command may not need: torch (about 2 s), torch._dynamo (what torchvision's ops
# and the meta device pull in), huggingface_hub (0.3 s), pandas (0.2 s; pyarrow.dataset imports it)
WATCHED = ("huggingface_hub", "pandas", "pyarrow.dataset", "torch", "torch._dynamo", "torchvision")
# `msfkit ARGS...` in a fresh interpreter that says last on stderr which of WATCHED it loaded
IMPORTED = (
    "import sys\nfrom msfkit.cli.main import main\nsys.argv = ['msfkit', *sys.argv[1:]]\ntry:\n    main()\n"
    f"finally:\n    print(sorted(m for m in {WATCHED!r} if m in sys.modules), file=sys.stderr)\n"
)


def _imported(args: list[str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The finished `msfkit ARGS...` process and the modules of WATCHED it loaded."""
    r = subprocess.run([sys.executable, "-c", IMPORTED, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r, ast.literal_eval(r.stderr.splitlines()[-1])


@pytest.mark.slow
def test_a_search_by_store_rows_imports_no_torch(tmp_path):
    """A stored row as the query needs no model: the command answers without importing torch or
    torchvision (the lazy-import rule, README "The code"), which cost seconds at every start, nor
    pandas: the hits are printed from plain records, and the index's rows read without it."""
    store = write_vector_store(tmp_path / "store", clustered_vectors(50, 16, 3, seed=1))
    assert run("index", store, "-o", tmp_path / "ix", "--type", "flat").exit_code == 0
    r, loaded = _imported(["search", tmp_path / "ix", f"{store}:3,7", "-k", "2", "--json"])
    assert loaded == []
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    firsts = [(hit["query"], hit["row"]) for hit in hits if hit["rank"] == 1]
    assert firsts == [(f"{store}:3", 3), (f"{store}:7", 7)]


@pytest.mark.slow
def test_a_dedup_at_a_given_threshold_imports_no_torch(tmp_path):
    """Only --threshold auto embeds images; a threshold given answers from the stored vectors alone."""
    store = write_vector_store(tmp_path / "store", clustered_vectors(40, 16, 4, seed=2, spread=0.05))
    assert run("index", store, "-o", tmp_path / "ix", "--type", "flat").exit_code == 0
    r, loaded = _imported(["dedup", tmp_path / "ix", "--threshold", "0.95", "--json"])
    assert loaded == ["pandas"]  # its groups are a DataFrame; no model, no torch
    groups = {json.loads(line)["group"] for line in r.stdout.splitlines()}
    assert len(groups) == 4  # the four tight clusters


@pytest.mark.slow
def test_a_search_by_image_with_a_model_folder_imports_only_torch(photo_index):
    """An image query loads the index's model, a folder on disk: torch, but not the Hub client (a Hub
    id's business), nor torchvision or torch._dynamo (msfkit's own ResNet, built without the meta
    device), nor pandas, each of which would add a fraction of a second to every one-image search."""
    index, _, photos, _ = photo_index
    r, loaded = _imported(["search", index, photos / "bear.jpg", "-k", "1", "--json"])
    assert loaded == ["torch"]
    assert json.loads(r.stdout)["path"] == str(photos / "bear.jpg")
