"""msfkit.serve.collection_map: the map's points, colours and lasso, on the planted index."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from matplotlib.path import Path as Polygon

import msfkit
from msfkit.index import build_index
from msfkit.serve.collection_map import MapView, inside_polygon
from msfkit.serve.curation import CurationViews
from msfkit.serve.duplicates import DuplicatesView
from msfkit.serve.errors import Refused
from msfkit.serve.rows import Rows
from tests.msfkit.serve.planted import FOREIGN, LEAKED


@pytest.fixture(scope="module")
def view(planted):
    return _view(planted)


def test_the_even_odd_rule_agrees_with_matplotlib_on_a_concave_crossing_lasso():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (2000, 2))
    angles, radii = np.linspace(0, 2 * np.pi, 11)[:-1], np.array([1, 0.3] * 5)
    star = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)  # concave: a five-point star
    bow = [[-1, -1], [1, 1], [1, -1], [-1, 1]]  # edges that cross: the even-odd rule decides
    for polygon in (star, np.array(bow, dtype=float)):
        expected = Polygon(polygon).contains_points(points)
        got = inside_polygon(points, polygon)
        assert got.any() and not got.all()
        assert (got == expected).mean() == 1.0


def test_the_points_go_out_as_little_endian_float32_pairs_in_row_order(view):
    answer = view.answer("pca")
    points = np.frombuffer(base64.b64decode(answer["points"]), dtype="<f4").reshape(-1, 2)
    assert answer["count"] == len(points) == 39 and answer["methods"][0] == "pca"
    np.testing.assert_array_equal(points, view.points("pca").points)
    assert view.points("pca") is view.points("pca")  # made once


def test_label_colours_are_aligned_with_the_rows(view, planted):
    colours = view.colours("label")
    labels = msfkit.open_index(planted).rows["label"].tolist()
    assert colours["names"] == ["a", "b"]
    assert [colours["names"][v] for v in colours["values"]] == labels


def test_group_colours_are_the_duplicate_groups_at_the_threshold(view):
    colours = view.colours("group", threshold=0.95)
    values = np.array(colours["values"])
    assert colours["total"] == len(LEAKED)
    for test_row, train_row in LEAKED.items():  # each copy shares its group with what it copies, alone
        assert values[test_row] == values[train_row] >= 0 and (values == values[test_row]).sum() == 2
    assert (values >= 0).sum() == 2 * len(LEAKED)


def _view(folder) -> MapView:
    index = msfkit.open_index(folder)
    rows = Rows.of(index)
    duplicates = DuplicatesView(index, rows, page_limit=200)
    return MapView(rows, duplicates, CurationViews(index, rows, page_limit=200), page_limit=200)


def test_where_no_images_are_near_duplicates_every_row_is_in_no_group(planted, tmp_path):
    build_index(planted.parent / "train-store", tmp_path / "index", kind="flat")  # TRAIN alone: no copies
    colours = _view(tmp_path / "index").colours("group", threshold=0.95)
    assert colours["total"] == 0 and colours["values"] == [-1] * 31


def test_outlier_colours_put_the_foreign_vector_highest(view):
    scores = np.array(view.colours("outlier")["values"], dtype=float)
    assert len(scores) == 39 and np.isfinite(scores).all() and scores.argmax() == FOREIGN


def test_a_lasso_selects_exactly_the_rows_inside_it(view):
    points = view.points("pca").points
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    triangle = [[x0 - 1, y0 - 1], [mx, y1 + 1], [x1 + 1, my]]
    expected = np.flatnonzero(Polygon(np.array(triangle)).contains_points(points))
    chosen = view.selection("pca", triangle, page=(0, 5))
    assert chosen["rows"] == expected.tolist() and chosen["total"] == len(expected) > 5
    assert [item["row"] for item in chosen["items"]] == expected[:5].tolist() and chosen["more"]
    assert chosen["items"][0]["rel"].startswith(("train/", "test/"))
    with pytest.raises(Refused, match="a lasso has 3 to 1000 vertices, not 2"):
        view.selection("pca", triangle[:2], page=(0, 5))
