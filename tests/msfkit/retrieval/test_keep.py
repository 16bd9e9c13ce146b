# ruff: noqa: E501 - command lines read best unbroken
"""msfkit.retrieval.keep and `msfkit dedup --keep`: which planted copies to remove, from an index or a
store, through the installed command; nothing is ever deleted."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from msfkit.retrieval.dedup import find_duplicates

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


def _removed(df) -> set[str]:
    return {Path(p).name for p in df["path"]}


def test_keep_first_largest_newest_choose_the_survivor_of_each_group(photo_index, photo_paths):
    index, _, _, _ = photo_index
    first = find_duplicates(index, threshold=0.995, keep="first").removals
    assert _removed(first) == {f"{p.stem}_{c}.jpg" for p in photo_paths[:3] for c in ("q40", "half")}
    assert {Path(k).name for k in first["kept"]} == {p.name for p in photo_paths[:3]}
    largest = find_duplicates(index, threshold=0.995, keep="largest").removals  # never the half-size copy
    assert all(not Path(k).name.endswith("_half.jpg") for k in largest["kept"])
    assert len(largest) == 6 and set(largest["reason"]) == {"keep largest"}


def test_newest_and_largest_follow_the_recorded_metadata():
    import pandas as pd

    from msfkit.retrieval.keep import removal_list

    groups = pd.DataFrame({"group": [0, 0, 0], "row": [0, 1, 2], "path": ["a.jpg", "b.jpg", "c.jpg"]})
    meta = pd.DataFrame({"width": [100, 200, 200], "height": [100, 100, 100], "bytes": [5, 7, 9],
                         "mtime": [30.0, 10.0, 20.0]})  # fmt: skip
    assert list(removal_list(groups, meta, "newest")["path"]) == ["b.jpg", "c.jpg"]
    largest = removal_list(groups, meta, "largest")["path"]  # c: the most pixels, then bytes
    assert list(largest) == ["a.jpg", "b.jpg"]
    assert set(removal_list(groups, meta, "first")["kept"]) == {"a.jpg"}


@pytest.mark.slow
def test_the_command_writes_a_removal_list_for_a_store_and_deletes_nothing(photo_index, tmp_path):
    _, store, photos, _ = photo_index
    before = sorted(p.name for p in photos.iterdir())
    out = tmp_path / "remove.csv"
    r = subprocess.run([MSFKIT, "dedup", str(store), "--threshold", "0.995", "--keep", "first", "-o", str(out)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().endswith(f"3 groups, 6 files to remove -> {out}")
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [*rows[0]] == ["path", "group", "kept", "reason"] and len(rows) == 6
    assert sorted(p.name for p in photos.iterdir()) == before
