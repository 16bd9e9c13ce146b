"""msfkit.curate.label_issues: planted label flips are found, with the true label suggested."""

from __future__ import annotations

import numpy as np
import pytest
from pandas.testing import assert_frame_equal

import msfkit
from msfkit.curate.label_issues import COLUMNS, label_issues
from msfkit.models.errors import MsfkitError
from tests.msfkit.curate.planted import D, clusters, labelled_store
from tests.msfkit.index_stores import write_vector_store

NAMES = np.array(["=coat", "bag", "shirt"])  # one starts like a formula: labels are any text


def _flipped(tmp_path, flips: int = 6):
    x, which = clusters(30, 3, seed=0)
    rng = np.random.default_rng(0)
    flipped = np.sort(rng.choice(len(x), size=flips, replace=False))
    given = which.copy()
    given[flipped] = (which[flipped] + 1 + rng.integers(0, 2, flips)) % 3  # another class
    store = labelled_store(tmp_path / "s", x, list(NAMES[given]), shard_rows=40)
    return store, flipped, which


def test_the_flipped_labels_are_found_with_the_true_label_suggested(tmp_path):
    store, flipped, truth = _flipped(tmp_path)
    issues = label_issues(store, k=10)
    assert tuple(issues.columns) == COLUMNS
    assert sorted(issues["row"]) == list(flipped)
    by_row = issues.set_index("row")
    assert list(by_row.loc[flipped, "suggested"]) == list(NAMES[truth[flipped]])
    assert (by_row["label"] != by_row["suggested"]).all()
    assert (issues["confidence"] >= 0.8).all() and (issues["self_confidence"] <= 0.2).all()
    assert issues["self_confidence"].is_monotonic_increasing


def test_probabilities_are_the_shares_of_the_neighbours_labels(tmp_path):
    x, which = clusters(6, 2, seed=1)
    labels = list(NAMES[which])
    labels[0] = "bag"  # one of six in cluster 0 is mislabelled: its 5 neighbours in the cluster say coat
    issues = label_issues(labelled_store(tmp_path / "s", x, labels), k=5)
    assert list(issues["row"]) == [0]
    assert issues.loc[0, "suggested"] == "=coat" and issues.loc[0, "label"] == "bag"
    assert issues.loc[0, "confidence"] == pytest.approx(1.0) and issues.loc[0, "self_confidence"] == 0.0


def test_images_without_a_label_neither_vote_nor_are_judged(tmp_path):
    x, which = clusters(20, 2, seed=3)
    labels = [str(NAMES[c]) for c in which]
    for i in range(0, 10, 2):  # half of cluster 0 unlabelled, and row 1 mislabelled
        labels[i] = None
    labels[1] = "bag"
    issues = msfkit.label_issues(labelled_store(tmp_path / "s", x, labels), k=6)
    assert list(issues["row"]) == [1] and issues["suggested"][0] == "=coat"
    assert issues["confidence"][0] == pytest.approx(1.0)  # only labelled neighbours are counted


def test_a_store_without_two_labels_is_one_error_naming_it(tmp_path):
    x, _ = clusters(5, 2, seed=0)
    store = write_vector_store(tmp_path / "s", x)
    with pytest.raises(
        MsfkitError, match=rf"^{store}: holds 0 label\(s\); label issues need at least 2 classes"
    ):
        label_issues(store)
    one = labelled_store(tmp_path / "one", x, ["bag"] * 10)
    with pytest.raises(MsfkitError, match="holds 1 label"):
        label_issues(one)


def test_each_class_is_judged_against_its_own_threshold_as_in_confident_learning(tmp_path):
    # cluster 0: 4 shirts among 6 coats; cluster 1: 10 coats. With k = 9 each image's neighbours are
    # its cluster: a shirt sees p(shirt) = 3/9, a mixed coat p(shirt) = 4/9, p(coat) = 5/9.
    # Thresholds: t_shirt = 1/3 (every shirt is mixed), t_coat = (6 x 5/9 + 10 x 1) / 16 = 0.83.
    # A majority vote would flag the shirts; confident learning keeps them (p(shirt) reaches t_shirt,
    # p(coat) = 2/3 does not reach t_coat) and flags the mixed coats (p(shirt) = 4/9 >= t_shirt).
    x, _ = clusters(10, 2, seed=4)
    labels = ["shirt" if i < 4 else "coat" for i in range(10)] + ["coat"] * 10
    issues = label_issues(labelled_store(tmp_path / "s", x, labels), k=9)
    assert sorted(issues["row"]) == list(range(4, 10))
    assert set(issues["suggested"]) == {"shirt"}
    assert np.allclose(issues["confidence"], 4 / 9) and np.allclose(issues["self_confidence"], 5 / 9)


def test_by_default_the_flipped_labels_rank_before_a_clean_image_at_a_class_border(tmp_path):
    # 60 coats round e0, 48 bags round e1 and 12 round e2; row 0 a clean coat near the e2 bags, its
    # 10 nearest all bags, its next ones coats; rows 1-3 coats in the coat cluster labelled bag.
    # With 10 votes the border coat ties with the flips at self-confidence 0; with 50 it does not.
    rng = np.random.default_rng(0)
    eye = np.eye(D)
    centres = np.concatenate([[eye[2] + 0.6 * eye[0]], eye[[0] * 60], eye[[1] * 48], eye[[2] * 12]])
    x = centres + 0.03 * rng.standard_normal(centres.shape)
    labels = ["coat"] + ["bag"] * 3 + ["coat"] * 57 + ["bag"] * 60
    store = labelled_store(tmp_path / "s", x / np.linalg.norm(x, axis=1, keepdims=True), labels)
    assert sorted(label_issues(store, k=10)["row"][:3]) != [1, 2, 3]  # cleanlab's k: the border coat first
    issues = label_issues(store)
    assert_frame_equal(msfkit.label_issues(store), issues)  # the API's default is the library's
    assert sorted(issues["row"][:3]) == [1, 2, 3] and set(issues["suggested"][:3]) == {"coat"}
    assert 0 not in set(issues["row"]) or issues["self_confidence"][issues["row"] == 0].item() > 0.5
