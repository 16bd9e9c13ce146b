"""Labels the neighbourhood votes against: cleanlab's confident learning on k-NN predictions.

    label_issues("index")   # DataFrame: row, path, label, suggested, confidence, self_confidence

Each image's class probabilities are the labels of its k nearest other images (uniform votes, as
cleanlab's Datalab gets them from a k-NN classifier; the image itself never votes, so they are
out-of-sample). k is 50 by default, not cleanlab's 10: with 10 votes an image's own-label share
takes 11 values only, and a clean image at a class border ties at 0 with the flipped ones; with 50
it keeps a few votes of its own class while a flipped image, among another class, keeps none.

As in cleanlab's `find_label_issues(filter_by="confident_learning")`, every class j
has a threshold t_j, the mean probability of j over the images labelled j; an image's confident
label is the most probable class whose probability reaches its threshold, and the image is an issue
when that class is not its own label. `suggested` is that class, `confidence` its probability,
`self_confidence` the probability of the given label (cleanlab's label quality score); issues are
listed least self-confident first (ties: the more confident suggestion first), so the top of the
list is where the mistakes are: read it from the top. Of cleanlab's rankings, self-confidence ranked
planted flips best (bench/curate.py, docs/curation.md). Images without a label neither vote nor are
judged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from msfkit.curate.neighbours import BLOCK_ROWS, Source, neighbour_blocks, opened, source_name
from msfkit.models.errors import MsfkitError

DEFAULT_K = 50  # votes per image: measured on planted flips (docs/curation.md)
COLUMNS = ("row", "path", "label", "suggested", "confidence", "self_confidence")


def label_issues(source: Source, k: int | None = None, progress: bool = False) -> pd.DataFrame:
    """The images of `source` (an index folder or a labelled embedding store) whose `k` (DEFAULT_K
    unless given) nearest others vote for another label; a user error when it holds fewer than two
    labels."""
    k = DEFAULT_K if k is None else k
    with opened(source) as index:
        name = source_name(source)
        codes, classes = _label_codes(index, name)
        votes = _neighbour_votes(index, codes, k, name, progress)
        thresholds = _thresholds(votes, codes, len(classes))
        blocks = [
            _issues(s, votes[s : s + BLOCK_ROWS], codes, thresholds) for s in range(0, len(votes), BLOCK_ROWS)
        ]
        rows, suggested, confidence, own = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
        order = np.lexsort((rows, -confidence, own))
        rows = rows[order]
        return pd.DataFrame(
            {
                "row": rows,
                "path": index.absolute_paths(rows),
                "label": classes[codes[rows]],
                "suggested": classes[suggested[order]],
                "confidence": confidence[order],
                "self_confidence": own[order],
            },
            columns=list(COLUMNS),
        )


def _label_codes(index, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(the class number of every indexed row, -1 where it has no label; the sorted classes)."""
    labels = index.rows["label"]
    codes, classes = pd.factorize(labels, sort=True)  # a missing label is -1
    if len(classes) < 2:
        raise MsfkitError(
            f"{name}: holds {len(classes)} label(s); label issues need at least 2 classes "
            "(embed a folder with one sub-folder per class)"
        )
    return codes.astype(np.int64), np.asarray(classes, dtype=object)


def _neighbour_votes(index, codes: np.ndarray, k: int, name: str, progress: bool) -> np.ndarray:
    """(N, k) class numbers of every image's k nearest other images; -1 for none or no label."""
    blocks = neighbour_blocks(index, k, name, progress, "label issues")
    return np.concatenate(
        [np.where(valid, codes[np.maximum(rows, 0)], -1).astype(np.int32) for _, _, rows, valid in blocks]
    )


def _probabilities(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """(rows, classes): the share of each row's labelled neighbours in each class (all 0 for none)."""
    rows = np.broadcast_to(np.arange(len(votes))[:, None], votes.shape)
    counted = votes >= 0
    counts = np.bincount(rows[counted] * n_classes + votes[counted], minlength=len(votes) * n_classes)
    counts = counts.reshape(len(votes), n_classes).astype(np.float64)
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def _thresholds(votes: np.ndarray, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's threshold: the mean probability of the class over the images labelled with it
    (cleanlab's confident thresholds); NaN for a class none of whose images has a labelled neighbour."""
    sums, counts = np.zeros(n_classes), np.zeros(n_classes)
    for start in range(0, len(votes), BLOCK_ROWS):
        p, own = (
            _probabilities(votes[start : start + BLOCK_ROWS], n_classes),
            codes[start : start + BLOCK_ROWS],
        )
        judged = (own >= 0) & (p.sum(axis=1) > 0)
        np.add.at(sums, own[judged], p[judged, own[judged]])
        np.add.at(counts, own[judged], 1)
    return np.divide(sums, counts, out=np.full(n_classes, np.nan), where=counts > 0)


def _issues(
    start: int, votes: np.ndarray, codes: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, suggested class, its probability, the own label's probability) of one block's issues."""
    p = _probabilities(votes, len(thresholds))
    own = codes[start : start + len(votes)]
    with np.errstate(invalid="ignore"):  # a NaN threshold is never reached
        above = (p >= thresholds) & (p > 0)
    confident = np.argmax(np.where(above, p, -1.0), axis=1)
    issue = np.flatnonzero((own >= 0) & above.any(axis=1) & (confident != own))
    at = np.arange(len(votes))[issue]
    return start + issue, confident[issue], p[at, confident[issue]], p[at, own[issue]]
