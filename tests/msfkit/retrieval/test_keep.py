# ruff: noqa: E501 - command lines read best unbroken
"""msfkit.retrieval.keep and `msfkit dedup --keep`: which planted copies to remove, from an index or a
store, through the installed command; nothing is ever deleted."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from msfkit.models.errors import MsfkitError
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


def _greedy_reference(x: np.ndarray, keep: int) -> set[int]:
    """Exact, on all pairs: drop the later row of the closest pair still kept until `keep` remain."""
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    alive = np.ones(len(x), dtype=bool)
    while alive.sum() > keep:
        masked = np.where(alive[:, None] & alive[None, :], sims, -np.inf)
        i, j = np.unravel_index(np.argmax(masked), masked.shape)
        alive[max(i, j)] = False
    return set(np.nonzero(~alive)[0].tolist())


def test_keep_fraction_drops_the_planted_copies_first_then_the_closest_pairs(tmp_path):
    from msfkit.index import build_index
    from tests.msfkit.index_stores import clustered_vectors, write_vector_store

    rng = np.random.default_rng(0)
    x = clustered_vectors(60, 32, clusters=6, seed=0)
    copies = x[:20] + 0.05 * rng.standard_normal((20, 32)).astype(np.float32) / np.sqrt(32)
    x = np.concatenate([x, copies / np.linalg.norm(copies, axis=1, keepdims=True)])
    write_vector_store(tmp_path / "store", x)
    build_index(tmp_path / "store", tmp_path / "index", kind="flat", recall=1.0)

    found = find_duplicates(tmp_path / "index", fraction=0.75)  # 60 of 80 stay: exactly the copies go
    removed = {int(Path(p).stem.split("_")[1]) for p in found.removals["path"]}
    assert removed == set(range(60, 80))
    assert [Path(p).name for p in found.removals["kept"]] == [
        f"img_{r - 60:05d}.jpg" for r in sorted(removed)
    ]
    assert (found.groups["size"] == 2).all() and found.groups["group"].nunique() == 20

    for fraction in (0.6, 0.45):  # beyond the copies: the closest pairs of distinct images, in order
        found = find_duplicates(tmp_path / "store", fraction=fraction)
        removed = {int(Path(p).stem.split("_")[1]) for p in found.removals["path"]}
        assert removed == _greedy_reference(x, math.ceil(fraction * 80)), fraction
        assert set(found.removals["kept"]).isdisjoint(found.removals["path"])  # stand-ins are kept
    assert find_duplicates(tmp_path / "store", fraction=1.0).removals.empty
    with pytest.raises(MsfkitError, match="k nearest neighbours run out with"):
        find_duplicates(tmp_path / "store", fraction=0.05, k=1)
    with pytest.raises(MsfkitError, match="above 0 and at most 1"):
        find_duplicates(tmp_path / "store", fraction=1.5)
