"""Labels in evaluations: classes and their indices, per-class samples, held-out splits.

One rule for every protocol: the classes are the sorted unique train labels (any values: ints with
gaps, strings), and a val label that is not a train class is an error (no protocol could predict it).
"""

from __future__ import annotations

import math

import numpy as np

from msfkit.models.errors import MsfkitError


def class_indices(labels, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sorted classes, index of every label): classes from the labels unless given, and then a
    label outside `classes` is an error ("val has classes the train set lacks")."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise MsfkitError(f"labels must be one-dimensional, got shape {labels.shape}")
    if classes is None:
        found, idx = np.unique(labels, return_inverse=True)
        return found, idx.astype(np.int64)
    unknown = np.setdiff1d(np.unique(labels), classes)
    if len(unknown):
        shown = ", ".join(map(str, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        raise MsfkitError(f"val has classes the train set lacks: {shown}")
    return classes, np.searchsorted(classes, labels).astype(np.int64)


def sample_per_class(labels, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of round(fraction x count) items of every class (at least one), chosen by `seed`.

    The paper's semi-supervised setting (1 % and 10 % of the labels); the same call always picks
    the same images.
    """
    if not 0 < fraction <= 1:
        raise MsfkitError(f"train fraction must be in (0, 1], not {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        picked.append(rng.permutation(members)[: max(1, round(fraction * len(members)))])
    return np.sort(np.concatenate(picked))


def holdout_split(labels: np.ndarray, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit, holdout) indices of TRAIN: `fraction` of every class with at least two items held out."""
    rng = np.random.default_rng(seed)
    fit, held = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_held = math.ceil(fraction * len(members)) if len(members) > 1 else 0
        held.append(members[:n_held])
        fit.append(members[n_held:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(held))
