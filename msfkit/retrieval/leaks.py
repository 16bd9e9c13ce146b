"""Leaks between splits: the TEST images that have a near copy in TRAIN, for a data pipeline's check.

    leaks = find_leaks("train-index", "test-store", threshold="auto")
    leaks.table    # row, path, label, match_row, match, match_label, score: one row per leaking TEST image
    leaks.results  # the same as search results (each TEST image a query, its match the hit), to render

TRAIN and TEST are each an index folder or an embedding store (searched exactly through a temporary
flat index), built with one model: vectors of two models are refused (`check_same_model`). Each TEST
vector, read back from its stores one block at a time, asks TRAIN for its nearest image; a similarity
at or above the threshold is a leak. `threshold="auto"` is dedup's calibrated threshold, measured on
TRAIN (`msfkit.retrieval.calibrate`). An approximate TRAIN index (HNSW, IVF) is searched at its own
tuned parameters and may miss a leak its search misses; a store or a flat index never does.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from msfkit.index.folder import IndexFolder
from msfkit.models.identity import check_same_model
from msfkit.retrieval.calibrate import Calibration
from msfkit.retrieval.dedup import BLOCK_ROWS, DEFAULT_THRESHOLD, open_source, resolve_threshold
from msfkit.retrieval.search import COLUMNS as RESULT_COLUMNS

COLUMNS = ("row", "path", "label", "match_row", "match", "match_label", "score")
Source = IndexFolder | str | os.PathLike


@dataclass
class Leaks:
    """What `find_leaks` found: one row per leaking TEST image (in TEST's order), the threshold used
    and the calibration that chose it (with `threshold="auto"`)."""

    table: pd.DataFrame
    threshold: float
    calibration: Calibration | None = None

    @property
    def results(self) -> pd.DataFrame:
        """The leaks in the shape of search results (`msfkit.retrieval.search.COLUMNS`), for the
        contact sheet and the HTML gallery: each TEST image a query, its TRAIN match rank 1."""
        t = self.table
        return pd.DataFrame(
            {
                "query": [f"TEST {Path(str(p)).name}" for p in t["path"]],
                "query_path": t["path"],
                "rank": 1,
                "score": t["score"],
                "row": t["match_row"],
                "path": t["match"],
                "label": t["match_label"],
            },
            columns=list(RESULT_COLUMNS),
        )


def find_leaks(
    train: Source,
    test: Source,
    *,
    threshold: float | str = DEFAULT_THRESHOLD,
    progress: bool = False,
    device: str | None = None,
) -> Leaks:
    """The TEST images with a near copy in TRAIN at `threshold` (a cosine similarity, or "auto")."""
    with tempfile.TemporaryDirectory(prefix="msfkit-leaks-") as tmp:
        train_index = open_source(train, Path(tmp) / "train")
        test_index = open_source(test, Path(tmp) / "test")
        check_same_model(
            train_index.model,
            test_index.model,
            f"TRAIN {_name(train)}",
            f"TEST {_name(test)}",
            "embed both with one model",
        )
        threshold, calibration = resolve_threshold(train_index, threshold, device)
        rows, matches, scores = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        with tqdm(total=len(test_index), unit="vec", desc="leaks", disable=not progress, leave=False) as bar:
            for start, block in test_index.store.iter_batches(BLOCK_ROWS):
                s, r = train_index.search_vectors(block, 1)
                near = (r[:, 0] >= 0) & (s[:, 0] >= threshold)
                rows.append(start + np.nonzero(near)[0])
                matches.append(r[near, 0])
                scores.append(s[near, 0])
                bar.update(len(block))
        row, match = np.concatenate(rows).astype(np.int64), np.concatenate(matches).astype(np.int64)
        table = pd.DataFrame(
            {
                "row": row,
                "path": test_index.absolute_paths(row),
                "label": test_index.rows["label"].to_numpy()[row],
                "match_row": match,
                "match": train_index.absolute_paths(match),
                "match_label": train_index.rows["label"].to_numpy()[match],
                "score": np.concatenate(scores).astype(float),
            }
        )
        return Leaks(table, threshold, calibration)


def _name(source: Source) -> str:
    """How messages name `source`: the folder the user gave."""
    return str(source.path if isinstance(source, IndexFolder) else source)
