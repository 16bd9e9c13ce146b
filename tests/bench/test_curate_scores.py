"""bench/curate_scores.py: a ranked list is judged at the cut where it reaches the target recall."""

from __future__ import annotations

from bench.curate_scores import precision_recall, ranked_cuts

PLANTED = set("abcdefghij")
RANKED = ["a", "b", "x", "c", "d", "e", "f", "y", "g", "z", "h", "w", "v"]  # the 7th hit is 9th


def test_a_ranked_list_is_cut_where_recall_first_reaches_the_target_and_at_its_best_f1():
    assert ranked_cuts(RANKED, PLANTED, recall=0.7) == (
        "precision 0.778 at recall 0.7 (the first 9 listed); "
        "best F1 0.762: precision 0.727, recall 0.800 (the first 11)"
    )
    assert ranked_cuts(RANKED[:3], PLANTED) == (
        "recall 0.7 never reached; best F1 0.333: precision 1.000, recall 0.200 (the first 2)"
    )


def test_the_whole_list_is_judged_as_a_set():
    assert (
        precision_recall(set(RANKED), PLANTED) == "precision 0.615, recall 0.800 (8 of 10 found, 13 listed)"
    )
