"""msfkit.serve.curation: the outlier, label-issue and leak lists of the planted index (two stores)."""

from __future__ import annotations

import numpy as np
import pytest

import msfkit
from msfkit.curate import label_issues, outliers
from msfkit.index import build_index
from msfkit.serve.curation import CurationViews
from msfkit.serve.errors import Refused
from msfkit.serve.rows import Rows
from tests.msfkit.curate.planted import batch_among_clusters
from tests.msfkit.serve.planted import FLIPPED, FOREIGN, LEAKED


@pytest.fixture(scope="module")
def index(planted):
    return msfkit.open_index(planted)


@pytest.fixture(scope="module")
def views(index):
    return CurationViews(index, Rows.of(index), page_limit=200)


def test_leaks_are_the_test_stores_planted_copies_with_their_train_matches(views):
    page = views.page("leaks", (0, 20), threshold=0.95)
    assert page["total"] == len(LEAKED) and page["test"] == 1 and len(page["stores"]) == 2
    assert {item["row"]: item["match"]["row"] for item in page["items"]} == LEAKED
    assert all(item["score"] > 0.999 for item in page["items"])
    assert all(
        item["rel"].startswith("test/") and item["match"]["rel"].startswith("train/")
        for item in page["items"]
    )
    reverse = views.page("leaks", (0, 20), threshold=0.95, test=0)  # TRAIN's copies in TEST: the same pairs
    assert {item["row"]: item["match"]["row"] for item in reverse["items"]} == {
        t: s for s, t in LEAKED.items()
    }
    assert views.table("leaks", 0.95) is views.table("leaks", 0.95)  # computed once, then kept


def test_label_issues_are_the_librarys_and_find_the_flipped_labels(views, index):
    page = views.page("label-issues", (0, 200))
    expected = label_issues(index)
    assert page["k"] == 50
    assert [item["row"] for item in page["items"]] == expected["row"].tolist()
    assert set(FLIPPED) <= {item["row"] for item in page["items"]}
    flipped = next(item for item in page["items"] if item["row"] == FLIPPED[0])
    assert (flipped["label"], flipped["suggested"]) == ("b", "a")


def test_outliers_are_the_librarys_paged_with_the_foreign_vector_first(views, index):
    first, second = views.page("outliers", (0, 4)), views.page("outliers", (4, 4))
    expected = outliers(index)
    assert [i["row"] for i in first["items"] + second["items"]] == expected["row"].tolist()[:8]
    assert first["items"][0]["row"] == FOREIGN and first["more"] and first["total"] == len(index)
    assert [i["rank"] for i in first["items"]] == [1, 2, 3, 4]


def test_outliers_by_mahalanobis_find_the_batch_and_each_scores_list_is_kept(tmp_path):
    """A batch of six alike foreign vectors among four clusters (1,606 rows): first by Mahalanobis;
    the map's colours follow the score asked for, and each score's list is computed once."""
    store, foreign = batch_among_clusters(tmp_path / "s")
    build_index(store, tmp_path / "ix", kind="flat")
    index = msfkit.open_index(tmp_path / "ix")
    views = CurationViews(index, Rows.of(index), page_limit=200)
    far = views.page("outliers", (0, 6), score="mahalanobis")
    assert {item["row"] for item in far["items"]} == foreign
    assert (far["score"], far["k"], far["total"]) == ("mahalanobis", 10, 1606)
    near = views.page("outliers", (0, 6))
    assert near["score"] == "knn" and [i["row"] for i in near["items"]] == outliers(index)["row"].tolist()[:6]
    expected = outliers(index, score="mahalanobis")
    scores = views.outlier_scores("mahalanobis")
    assert np.allclose(scores[expected["row"]], expected["score"]) and np.isfinite(scores).all()
    assert views.table("outliers", score="mahalanobis") is views.table("outliers", score="mahalanobis")
    assert views.table("outliers") is not views.table("outliers", score="mahalanobis")
    with pytest.raises(Refused, match="score='lof': one of knn, mahalanobis"):
        views.page("outliers", (0, 6), score="lof")


def test_bad_questions_are_refused_in_one_line(views, planted, tmp_path):
    with pytest.raises(Refused, match="no curation view 'duplicates'"):
        views.page("duplicates", (0, 20))
    with pytest.raises(Refused, match="limit between 1 and 200"):
        views.page("outliers", (0, 0))
    with pytest.raises(Refused, match="test=5: the index holds stores 0 to 1"):
        views.page("leaks", (0, 20), test=5)
    build_index(planted.parent / "train-store", tmp_path / "one", kind="flat")
    one = msfkit.open_index(tmp_path / "one")
    with pytest.raises(Refused, match=r"this index holds one: build it from both splits") as refused:
        CurationViews(one, Rows.of(one), page_limit=200).page("leaks", (0, 20))
    assert refused.value.status == 409
