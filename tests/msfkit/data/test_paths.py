"""msfkit.data.paths: which names read from data may name a file under a root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from msfkit.data.paths import UnsafePath, check_row_names, clean_name, name_problem, refused_entry, row_paths


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a.jpg", None),
        ("cats/./a..b.jpg", None),  # '..' inside a part is a name, not a climb
        ("...", None),
        ("../a.jpg", "has a '..' part"),
        ("cats/../../a.jpg", "has a '..' part"),
        ("cats/..", "has a '..' part"),
        ("/etc/passwd", "absolute"),
        ("", "empty"),
        ("a\0.jpg", "holds a NUL character"),
    ],
)
def test_name_problem(name, problem):
    assert name_problem(name) == problem


def test_clean_name_drops_empty_and_dot_parts():
    assert clean_name("./cats//a.jpg") == "cats/a.jpg"
    assert clean_name("a.jpg") == "a.jpg"


def test_row_paths_join_safe_names_to_an_absolute_root():
    assert row_paths("/data", ["cats/a.jpg", "b.jpg"], "st") == [
        Path("/data/cats/a.jpg"),
        Path("/data/b.jpg"),
    ]


@pytest.mark.parametrize(
    ("root", "rels", "says"),
    [
        ("/data", ["a.jpg", "../x.jpg"], "st: row path '../x.jpg' is unsafe (has a '..' part)"),
        ("/data", ["/etc/passwd"], "st: row path '/etc/passwd' is unsafe (absolute)"),
        ("/data", [None], "st: row path None is unsafe (not text)"),
        ("data", ["a.jpg"], "st: its source root 'data' is not an absolute path"),
        (None, ["a.jpg"], "st: its source root None is not an absolute path"),
    ],
)
def test_row_paths_refuse_a_root_or_row_that_was_edited(root, rels, says):
    with pytest.raises(UnsafePath, match="^" + re.escape(says)):
        row_paths(root, rels, "st")


def test_check_row_names_names_the_first_unsafe_row():
    check_row_names(["a.jpg", "b/c.png"], "st")
    with pytest.raises(UnsafePath, match="'b/../../c' is unsafe"):
        check_row_names(["a.jpg", "b/../../c", "/x"], "st")


def test_refused_entry_splits_a_name_inside_a_path_list(tmp_path):
    (tmp_path / "picks.txt").write_text("")
    assert refused_entry(f"{tmp_path}/picks.txt/../x.jpg") == (f"{tmp_path}/picks.txt", "../x.jpg")
    assert refused_entry(f"{tmp_path}/picks.txt//etc/passwd") == (f"{tmp_path}/picks.txt", "/etc/passwd")
    assert refused_entry(f"{tmp_path}/other.txt/../x.jpg") is None  # no such list
    assert refused_entry(f"{tmp_path}/photo.jpg") is None
