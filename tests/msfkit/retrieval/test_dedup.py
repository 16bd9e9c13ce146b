"""msfkit.retrieval.dedup finds planted copies of real photos and leaves distinct photos alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from msfkit.models.errors import MsfkitError
from msfkit.retrieval.dedup import COLUMNS, dedup
from tests.msfkit.index_stores import PLANTED, photo_index_folders


@pytest.fixture
def photo_index(photo_paths, tmp_path_factory):
    return photo_index_folders(photo_paths, tmp_path_factory)


def test_planted_copies_form_one_group_each_and_distinct_photos_none(photo_index, photo_paths):
    index, _, photos, _ = photo_index
    groups = dedup(index, threshold=0.96)
    assert tuple(groups.columns) == COLUMNS
    found = {frozenset(Path(p).name for p in g["path"]) for _, g in groups.groupby("group")}
    planted = {frozenset([p.name] + [f"{p.stem}_{c}.jpg" for c in PLANTED]) for p in photo_paths[:3]}
    assert found == planted
    assert (groups["size"] == 4).all() and (groups["score"] >= 0.96).all()
    assert sorted(groups["row"]) == sorted(set(groups["row"]))


def test_a_higher_threshold_leaves_out_the_crops(photo_index, photo_paths):
    index, _, _, _ = photo_index
    strict = dedup(index, threshold=0.995)  # a crop changes the picture more than re-encoding or resizing
    found = {frozenset(Path(p).name for p in g["path"]) for _, g in strict.groupby("group")}
    assert found == {frozenset([p.name, f"{p.stem}_q40.jpg", f"{p.stem}_half.jpg"]) for p in photo_paths[:3]}
    assert dedup(index, threshold=0.99999).empty


def test_dedup_needs_the_stores_the_index_was_built_from(photo_index, tmp_path):
    import shutil

    index, store, _, _ = photo_index
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    moved = tmp_path / "store"
    shutil.move(store, moved)
    try:
        with pytest.raises(MsfkitError, match="gone or changed"):
            dedup(copy)
    finally:
        shutil.move(moved, store)
    with pytest.raises(MsfkitError, match="between -1 and 1"):
        dedup(copy, threshold=2)
