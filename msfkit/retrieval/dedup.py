"""Groups of near-duplicate images in an index: a k-NN graph cut at a similarity, then its groups.

Every indexed vector (read back from the stores the index was built from, one block at a time)
asks the index for its k nearest neighbours; an edge joins two images whose cosine similarity is
at least `threshold`. Memory is the index, one block of vectors and the kept edges: never an N x N
matrix. Two ways to group (`msfkit.retrieval.components`):

- `connected` (the default): the connected components with two or more images. A group larger than
  k + 1 is still found whole as long as its members are chained by edges, as copies of one image
  are; but a chain of near pairs a~b~c~d also joins a and d, however far apart.
- `centre`: one representative per group and only the images within the threshold of IT (column
  `centre`: its row; `score`: each member's similarity to it). No chains.

    groups = dedup("index", threshold=0.95)   # DataFrame: group, size, row, path, label, score
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm import tqdm

from msfkit.index.build import build_index
from msfkit.index.folder import IndexFolder, open_folder
from msfkit.models.errors import MsfkitError
from msfkit.retrieval.components import centre_groups, components
from msfkit.retrieval.keep import keep_fraction, preference, removal_list
from msfkit.store import is_store

if TYPE_CHECKING:
    from msfkit.retrieval.calibrate import Calibration

DEFAULT_THRESHOLD = 0.95
DEFAULT_K = 10
BLOCK_ROWS = 8192
COLUMNS = ("group", "size", "row", "path", "label", "score")
GROUPINGS = ("connected", "centre")


def dedup(
    index: IndexFolder | str | os.PathLike,
    threshold: float = DEFAULT_THRESHOLD,
    k: int = DEFAULT_K,
    progress: bool = False,
    groups: str = "connected",
) -> pd.DataFrame:
    """One row per image in a near-duplicate group; `score` is its best similarity within the group
    (`groups="centre"`: its similarity to the group's centre, whose row is column `centre`).

    Groups are numbered from 0, largest first; rows within a group are in index order.
    """
    return SimilarityGraph.build(index, floor=threshold, k=k, progress=progress).cut(threshold, groups=groups)


@dataclass(frozen=True)
class SimilarityGraph:
    """The k-NN similarity graph of an index, built once, cut at any threshold >= `floor`.

        graph = SimilarityGraph.build(index, floor=0.8)   # one k-NN search of every indexed vector
        graph.cut(0.95)                                    # == dedup(index, threshold=0.95)

    `a`, `b`, `scores`: the edges (row, neighbour, cosine similarity) with a score >= `floor`, best
    first, so a cut keeps a prefix of them. A cut joins the kept edges' rows (union-find, vectorised)
    and numbers the components as `dedup` does.
    """

    index: IndexFolder
    floor: float
    k: int
    a: np.ndarray
    b: np.ndarray
    scores: np.ndarray

    @classmethod
    def build(
        cls, index: IndexFolder | str | os.PathLike, floor: float = DEFAULT_THRESHOLD, k: int = DEFAULT_K,
        progress: bool = False,
    ) -> SimilarityGraph:  # fmt: skip
        _check(floor, k)
        index = index if not isinstance(index, (str, os.PathLike)) else open_folder(index)
        store = index.store
        edges: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        with tqdm(total=len(index), unit="vec", desc="dedup", disable=not progress, leave=False) as bar:
            for start, block in store.iter_batches(BLOCK_ROWS):
                scores, rows = index.search_vectors(block, k + 1)
                own = np.arange(start, start + len(block))[:, None]
                keep = (rows >= 0) & (rows != own) & (scores >= floor)
                edges.append((np.broadcast_to(own, rows.shape)[keep], rows[keep], scores[keep]))
                bar.update(len(block))
        a, b, s = (np.concatenate([e[i] for e in edges]) if edges else np.zeros(0) for i in range(3))
        s = s.astype(np.float32)
        order = np.argsort(-s, kind="stable")
        a, b = a.astype(np.int64)[order], b.astype(np.int64)[order]
        return cls(index, float(floor), int(k), a, b, s[order])

    def __len__(self) -> int:
        return len(self.scores)

    def cut(
        self, threshold: float, paths: np.ndarray | None = None, groups: str = "connected"
    ) -> pd.DataFrame:
        """The groups at `threshold` (>= `floor`): the same DataFrame as `dedup(index, threshold, k,
        groups=groups)`.

        `paths`: every indexed row's file (`index.absolute_paths`), when the caller holds them; else
        the members' are looked up, which is most of a cut's time when most rows are in a group."""
        _check(threshold, self.k)
        if groups not in GROUPINGS:
            raise MsfkitError(f"groups must be one of {', '.join(GROUPINGS)}, not {groups!r}")
        if threshold < self.floor:
            raise MsfkitError(f"threshold {threshold}: this graph holds edges down to {self.floor} only")
        m = int(np.count_nonzero(self.scores >= threshold))  # the edges are best first: a prefix
        a, b, s = self.a[:m], self.b[:m], self.scores[:m]
        n = len(self.index)
        columns = COLUMNS + (("centre",) if groups == "centre" else ())
        if groups == "centre":
            roots, best = centre_groups(n, a, b, s)  # each group's root is its centre
            members = np.nonzero(roots >= 0)[0]
        else:
            best = np.full(n, -np.inf, dtype=np.float32)
            np.maximum.at(best, a, s)
            np.maximum.at(best, b, s)
            members = np.nonzero(np.isfinite(best))[0]
            roots = components(n, a, b)  # each group's root is its first row
        if not len(members):
            return pd.DataFrame(columns=columns)
        df = group_frame(self.index, members, roots[members], best[members], paths)
        if groups == "centre":
            df["centre"] = roots[members]
        return df.sort_values(["group", "row"], ignore_index=True)


def group_frame(
    index: IndexFolder,
    rows: np.ndarray,
    roots: np.ndarray,
    scores: np.ndarray,
    paths: np.ndarray | None = None,
) -> pd.DataFrame:
    """The `COLUMNS` of the grouped `rows`, each group named by a root row (`roots`) and numbered from
    0, largest first, ties by the root row; `paths` as in `SimilarityGraph.cut`."""
    ids, sizes = np.unique(roots, return_counts=True)
    order = np.lexsort((ids, -sizes))
    number = dict(zip(ids[order].tolist(), range(len(ids)), strict=True))
    size_of = dict(zip(ids.tolist(), sizes.tolist(), strict=True))
    return pd.DataFrame(
        {
            "group": np.array([number[r] for r in roots.tolist()], dtype=np.int64),
            "size": np.array([size_of[r] for r in roots.tolist()], dtype=np.int64),
            "row": rows,
            "path": index.absolute_paths(rows) if paths is None else paths[rows],
            "label": index.rows["label"].to_numpy()[rows],
            "score": scores.astype(float),
        }
    )


def _check(threshold: float, k: int) -> None:
    if not -1 <= threshold <= 1:
        raise MsfkitError(f"threshold {threshold}: a cosine similarity, between -1 and 1")
    if k < 1:
        raise MsfkitError(f"k must be >= 1, not {k}")


@dataclass
class Duplicates:
    """What `find_duplicates` found: the groups, the removal list (with `keep`) and the calibration
    (with `threshold="auto"`)."""

    groups: pd.DataFrame
    removals: pd.DataFrame | None = None
    calibration: Calibration | None = None


def find_duplicates(
    source: IndexFolder | str | os.PathLike,
    *,
    threshold: float | str = DEFAULT_THRESHOLD,
    k: int = DEFAULT_K,
    keep: str | None = None,
    groups: str = "connected",
    fraction: float | None = None,
    progress: bool = False,
    device: str | None = None,
) -> Duplicates:
    """`dedup` of an index folder or of an embedding store (searched exactly through a temporary flat
    index); with `keep`, also the removal list of `msfkit.retrieval.keep`.

    `threshold="auto"` measures the threshold first (`msfkit.retrieval.calibrate`) and raises a user
    error, saying why, when copies and distinct images overlap. `fraction` is a size budget instead
    of a threshold (it ignores `threshold` and `groups`): the removal list that keeps that share, the
    most distinct (`msfkit.retrieval.keep.keep_fraction`; `keep` decides each pair, first by default),
    and as groups each kept image with those dropped for it."""
    with tempfile.TemporaryDirectory(prefix="msfkit-dedup-") as tmp:
        index = open_source(source, Path(tmp) / "index")
        if fraction is not None:
            return _within_budget(index, fraction, k=k, keep=keep or "first", progress=progress)
        threshold, calibration = resolve_threshold(index, threshold, device)
        found = dedup(index, threshold=threshold, k=k, progress=progress, groups=groups)
        removals = None if keep is None else removal_list(found, index.store.meta, keep)
        return Duplicates(found, removals, calibration)


def _within_budget(index: IndexFolder, fraction: float, k: int, keep: str, progress: bool) -> Duplicates:
    """`find_duplicates` with a `fraction` budget: each kept image grouped with those dropped for it."""
    graph = SimilarityGraph.build(index, floor=-1.0, k=k, progress=progress)
    rank = preference(index.store.meta, keep)
    rows, stand_in, scores = keep_fraction(fraction, graph.a, graph.b, graph.scores, rank)
    kept = np.unique(stand_in)
    best = np.full(len(index), -np.inf, dtype=np.float32)
    np.maximum.at(best, stand_in, scores)  # a kept image's score: its closest dropped one
    roots = np.concatenate([stand_in, kept])
    found = group_frame(index, np.concatenate([rows, kept]), roots, np.concatenate([scores, best[kept]]))
    found = found.sort_values(["group", "row"], ignore_index=True)
    return Duplicates(found, removal_list(found, index.store.meta, keep))


def open_source(source: IndexFolder | str | os.PathLike, scratch: Path) -> IndexFolder:
    """An index folder, opened; an embedding store, through a flat (exact) index built at `scratch`."""
    if not isinstance(source, IndexFolder) and is_store(source):
        build_index(source, scratch, kind="flat", recall=1.0)
        source = scratch
    return source if isinstance(source, IndexFolder) else open_folder(source)


def resolve_threshold(
    index: IndexFolder, threshold: float | str, device: str | None = None
) -> tuple[float, Calibration | None]:
    """(threshold, calibration): a number as it is; "auto" measured on `index` (a user error, saying
    why, when copies and distinct images overlap)."""
    if isinstance(threshold, str) and threshold != "auto":
        raise MsfkitError(f"threshold {threshold!r}: a cosine similarity between -1 and 1, or 'auto'")
    if threshold != "auto":
        _check(float(threshold), DEFAULT_K)
        return float(threshold), None
    from msfkit.retrieval.calibrate import calibrate  # loads torch: only "auto" embeds images

    calibration = calibrate(index, device=device)
    if calibration.threshold is None:
        raise MsfkitError(calibration.explain())
    return calibration.threshold, calibration


def path_lines(paths) -> str:
    """The exact `paths`, one a line (a removal list for `xargs -d '\\n'`); a name holding a line
    break cannot be one line, and is refused rather than split into two other names."""
    paths = [str(p) for p in paths]
    for path in paths:
        if "\n" in path:
            raise MsfkitError(f"{path!r}: a file name with a line break cannot be one line; use --json")
    return "".join(f"{p}\n" for p in paths)
