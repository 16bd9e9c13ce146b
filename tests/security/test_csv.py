"""The spreadsheet boundary (threat: a data set from the internet whose file and folder names are
formulas): every CSV msfkit writes goes through one writer that puts a `'` before a cell beginning
# every test here runs the installed command, a server or a Ray cluster: out of the quick loop
pytestmark = pytest.mark.slow


with = + - @ tab or CR (OWASP), so Excel and LibreOffice show it as text; the exact names stay in
JSON Lines and in the plain removal list. Through the installed command (a test's further cases of
the same command through its click group in this process), on a collection whose file and folder
names are formulas."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from msfkit.data.csv_writer import FORMULA_STARTS, csv_text, safe_cell
from tests.commands import in_process

MSFKIT = str(Path(sys.executable).with_name("msfkit"))
LABEL = '=HYPERLINK("https:attacker.example","open")'  # a class folder's name (no "/" in a name)
NAMES = ("=cmd.jpg", "+copy.jpg", "-copy.jpg", "@copy.jpg", "\tcopy.jpg")  # copies of one photo


def msfkit(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([MSFKIT, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def json_lines(r: subprocess.CompletedProcess) -> list[dict]:
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.fixture(scope="module")
def formula_index(photo_index, photo_paths, tmp_path_factory):
    """(index, class folder, store): one photo under five formula names in the class folder LABEL, beside
    eight other photos in `plain/`, embedded with the photo index's model."""
    from msfkit.index import build_index
    from tests.runs import embed

    model = photo_index[3]
    root = tmp_path_factory.mktemp("formulas")
    folder, plain = root / "photos" / LABEL, root / "photos" / "plain"
    folder.mkdir(parents=True)
    plain.mkdir()
    for name in NAMES:
        shutil.copy(photo_paths[0], folder / name)
    for p in photo_paths[1:9]:
        shutil.copy(p, plain / p.name)
    embed([root / "photos"], str(model), root / "store", draft=True)
    build_index(root / "store", root / "index")
    return root / "index", folder, root / "store"


def test_every_formula_start_is_neutralised_and_nothing_else():
    for start in FORMULA_STARTS:
        assert safe_cell(f"{start}1+1") == f"'{start}1+1"
    kept = ("photo.jpg", "/abs/=x.jpg", "", -0.5, 3, None)
    assert [safe_cell(v) for v in kept] == list(kept)
    table = pd.DataFrame({"path": ["=1+1", "a,b"], "score": [-1.5, 2.0]})
    assert csv_text(table) == 'path,score\n\'=1+1,-1.5\n"a,b",2.0\n'  # numbers stay numbers


def test_dedup_csv_neutralises_labels_and_json_and_paths_keep_them_exact(formula_index):
    index, folder, _ = formula_index
    r = msfkit("dedup", index, "--threshold", "0.999")
    assert r.returncode == 0, r.stderr
    got = rows(r.stdout)
    assert len(got) == len(NAMES) and {row["label"] for row in got} == {"'" + LABEL}
    exact = json_lines(in_process("dedup", index, "--threshold", "0.999", "--json"))
    assert {row["label"] for row in exact} == {LABEL}
    assert {Path(row["path"]).name for row in exact} == set(NAMES)
    remove = json_lines(in_process("dedup", index, "--threshold", "0.999", "--keep", "first", "--json"))
    listed = in_process("dedup", index, "--threshold", "0.999", "--keep", "first", "--paths")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "".join(f"{row['path']}\n" for row in remove)
    assert len(remove) == len(NAMES) - 1 and all(Path(row["path"]).parent == folder for row in remove)


def test_search_csv_neutralises_query_names_and_labels(formula_index, monkeypatch):
    index, folder, _ = formula_index
    r = msfkit("search", index, "=cmd.jpg", "+copy.jpg", "-k", "2", "--csv", cwd=folder)
    assert r.returncode == 0, r.stderr
    got = rows(r.stdout)
    assert {row["query"] for row in got} == {row["query_path"] for row in got} == {"'=cmd.jpg", "'+copy.jpg"}
    assert {row["label"] for row in got} == {"'" + LABEL}
    monkeypatch.chdir(folder)
    exact = json_lines(in_process("search", index, "=cmd.jpg", "-k", "2", "--json"))
    assert {row["query"] for row in exact} == {"=cmd.jpg"} and {row["label"] for row in exact} == {LABEL}


def test_store_export_csv_neutralises_file_names_and_labels(formula_index, tmp_path):
    _, _, store = formula_index
    r = msfkit("store", "export", store, tmp_path / "embeddings.csv")
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "embeddings.csv", newline="") as f:
        table = list(csv.reader(f))
    names = {row[0] for row in table[1:] if row[-1] != "plain"}
    assert names == {f"'{LABEL}/{name}" for name in NAMES}  # relative names: the formula comes first
    assert {row[-1] for row in table[1:]} == {"'" + LABEL, "plain"}
    vectors = [cell for row in table[1:] for cell in row[1:-1]]
    assert len(vectors) == (len(table) - 1) * 512 and all(v[0].isdigit() for v in vectors)  # numbers
