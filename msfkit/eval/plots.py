"""PNG plots of an evaluation: k-NN accuracy over k, and a confusion matrix.

Drawn on matplotlib `Figure`s, never pyplot: files only, no display, no global backend or figure
list for the caller to inherit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_knn_curve(curves: Mapping[str, Mapping[int, float]], path: str | Path, title: str = "") -> Path:
    """One line per protocol: top-1 % against k (log scale)."""
    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.subplots()
    for name, points in curves.items():
        ks = sorted(points)
        ax.plot(ks, [points[k] for k in ks], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("k (neighbours)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title or "k-NN accuracy over k")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def confusion_matrix(truth, predicted, classes: Sequence) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class, in the order of `classes`."""
    classes = np.asarray(classes)
    t = np.searchsorted(classes, np.asarray(truth))
    p = np.searchsorted(classes, np.asarray(predicted))
    cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def plot_confusion(truth, predicted, classes: Sequence, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix as a heat map; counts written in the cells when C <= 20."""
    cm = confusion_matrix(truth, predicted, classes)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(classes)
    size = min(4 + 0.45 * n, 16)
    fig = Figure(figsize=(size, size), dpi=120)
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    names = [str(c) for c in classes]
    if n <= 50:
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
