"""How bench/curate.py scores a list against planted truth: the whole list, and a ranked list at its cuts.

    precision_recall(found, planted)          # the whole list: precision, recall, counts
    ranked_cuts(ranked, planted, recall=0.7)  # a ranked list cut where recall first reaches 0.7,
                                              # and at its best F1

A ranked list (label issues, least self-confident first) is used by reading it from the top: the
issue's goal, "recall >= 0.7 at precision >= 0.7", is a point on it, the first cut whose recall
reaches the target, not the whole list.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def precision_recall(found: set[str], planted: set[str]) -> str:
    """The whole list `found` against `planted`: precision, recall, and the counts."""
    hit = len(found & planted)
    precision = hit / len(found) if found else float("nan")
    recall = hit / len(planted)
    return (
        f"precision {precision:.3f}, recall {recall:.3f} ({hit} of {len(planted)} found, {len(found)} listed)"
    )


def ranked_cuts(ranked: Sequence[str], planted: set[str], recall: float = 0.7) -> str:
    """`ranked` (best first) cut where its recall of `planted` first reaches `recall` (or "never"),
    and at the cut of best F1: each cut's precision, recall and length."""
    hits = np.cumsum([name in planted for name in ranked])
    if not len(hits) or not planted:
        return f"at recall {recall}: never (nothing listed)"
    listed = np.arange(1, len(hits) + 1)
    precisions, recalls = hits / listed, hits / len(planted)
    reached = np.flatnonzero(recalls >= recall)
    at = (
        f"precision {precisions[reached[0]]:.3f} at recall {recall} (the first {reached[0] + 1} listed)"
        if len(reached)
        else f"recall {recall} never reached"
    )
    with np.errstate(invalid="ignore"):
        f1 = np.nan_to_num(2 * precisions * recalls / (precisions + recalls))
    best = int(f1.argmax())
    return (
        f"{at}; best F1 {f1[best]:.3f}: precision {precisions[best]:.3f}, "
        f"recall {recalls[best]:.3f} (the first {best + 1})"
    )
