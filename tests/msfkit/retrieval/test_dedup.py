"""msfkit.retrieval.dedup finds planted copies of real photos and leaves distinct photos alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pandas.testing import assert_frame_equal

import msfkit
from msfkit.models.errors import MsfkitError
from msfkit.retrieval.dedup import COLUMNS, dedup
from tests.msfkit.index_stores import PLANTED


def test_planted_copies_form_one_group_each_and_distinct_photos_none(photo_index, photo_paths):
    index, _, photos, _ = photo_index
    groups = dedup(index, threshold=0.96)
    assert tuple(groups.columns) == COLUMNS
    found = {frozenset(Path(p).name for p in g["path"]) for _, g in groups.groupby("group")}
    planted = {frozenset([p.name] + [f"{p.stem}_{c}.jpg" for c in PLANTED]) for p in photo_paths[:3]}
    assert found == planted
    assert (groups["size"] == 4).all() and (groups["score"] >= 0.96).all()
    assert sorted(groups["row"]) == sorted(set(groups["row"]))


def test_a_higher_threshold_leaves_out_the_crops(photo_index, photo_paths):
    index, _, _, _ = photo_index
    strict = dedup(index, threshold=0.995)  # a crop changes the picture more than re-encoding or resizing
    found = {frozenset(Path(p).name for p in g["path"]) for _, g in strict.groupby("group")}
    assert found == {frozenset([p.name, f"{p.stem}_q40.jpg", f"{p.stem}_half.jpg"]) for p in photo_paths[:3]}
    assert dedup(index, threshold=0.99999).empty


def test_dedup_needs_the_stores_the_index_was_built_from(photo_index, tmp_path):
    import shutil

    index, store, _, _ = photo_index
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    moved = tmp_path / "store"
    shutil.move(store, moved)
    try:
        with pytest.raises(MsfkitError, match="gone or changed"):
            dedup(copy)
    finally:
        shutil.move(moved, store)
    with pytest.raises(MsfkitError, match="between -1 and 1"):
        dedup(copy, threshold=2)


def _chained_copies(n: int = 600, d: int = 64, seed: int = 3):
    """Distinct vectors plus chains of ever farther copies (each a small step from the last), so a
    group's members are joined by edges of many different scores."""
    from tests.msfkit.index_stores import clustered_vectors

    rng = np.random.default_rng(seed)
    x = clustered_vectors(n, d, clusters=40, seed=seed)
    chains = []
    for start in rng.choice(n, 30, replace=False):
        v = x[start]
        for _ in range(int(rng.integers(1, 6))):
            v = v + rng.uniform(0.02, 0.25) * rng.standard_normal(d).astype(np.float32) / np.sqrt(d)
            v = v / np.linalg.norm(v)
            chains.append(v)
    return np.concatenate([x, np.array(chains, dtype=np.float32)])


def _reference_groups(x: np.ndarray, threshold: float, k: int) -> set[frozenset[int]]:
    """Exact k-NN by brute force, joined one edge at a time: what `dedup` must find on a Flat index."""
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    parent = list(range(len(x)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    joined = set()
    for i in range(len(x)):
        for j in np.argsort(-sims[i], kind="stable")[:k]:
            if sims[i, j] >= threshold:
                joined |= {i, int(j)}
                parent[max(root(i), root(int(j)))] = min(root(i), root(int(j)))
    groups: dict[int, set[int]] = {}
    for i in joined:
        groups.setdefault(root(i), set()).add(i)
    return {frozenset(g) for g in groups.values()}


def test_a_graph_built_once_cuts_like_dedup_at_every_threshold(tmp_path):
    from msfkit.index import build_index
    from msfkit.retrieval.dedup import SimilarityGraph
    from tests.msfkit.index_stores import write_vector_store

    x = _chained_copies()
    write_vector_store(tmp_path / "store", x, shard_rows=250)
    build_index(tmp_path / "store", tmp_path / "index", kind="flat", recall=1.0)
    index = msfkit.open_index(tmp_path / "index")
    graph = SimilarityGraph.build(index, floor=0.8, k=5)
    assert len(graph) and (np.diff(graph.scores) <= 0).all() and graph.scores[-1] >= 0.8
    sizes = set()
    for t in (0.8, 0.9, 0.97, 0.99, 0.995, 0.999, 0.9999):
        cut = graph.cut(t)
        assert_frame_equal(cut, dedup(index, threshold=t, k=5), check_dtype=False)
        found = {frozenset(g["row"].tolist()) for _, g in cut.groupby("group")}
        assert found == _reference_groups(x, t, 5), t
        assert (cut.groupby("group")["size"].first().diff().dropna() <= 0).all()  # largest first
        sizes.add(len(cut))
    assert len(sizes) >= 4  # the thresholds really cut the graph differently
    paths = np.array(index.absolute_paths(np.arange(len(index))), dtype=object)
    assert_frame_equal(graph.cut(0.97, paths=paths), graph.cut(0.97))  # the caller's paths, the same
    with pytest.raises(MsfkitError, match="down to 0.8 only"):
        graph.cut(0.5)


def _chain_and_star(d: int = 64, seed: int = 5) -> tuple[np.ndarray, list[int], list[int]]:
    """Distinct vectors, then a chain of 5 (each at cosine 0.97 from the next, 0.88 two steps apart),
    then a star: 6 copies at cosine 0.96 from one vector (after them), the copies <= 0.92 from each other.
    Returns (vectors, chain rows, star rows: the centre first)."""
    from tests.msfkit.index_stores import clustered_vectors

    rng = np.random.default_rng(seed)
    x = clustered_vectors(200, d, clusters=20, seed=seed)
    basis = np.linalg.qr(rng.standard_normal((d, 8)))[0].T.astype(np.float32)  # 8 orthonormal directions
    theta = np.arccos(0.97)
    chain = [np.cos(i * theta) * basis[0] + np.sin(i * theta) * basis[1] for i in range(5)]
    copies = [0.96 * basis[2] + 0.28 * basis[3 + i % 5] * (-1) ** (i // 5) for i in range(6)]
    vectors = np.concatenate([x, np.array(chain + copies + [basis[2]], dtype=np.float32)])
    return vectors, list(range(200, 205)), [211, *range(205, 211)]  # the star's middle is its last row


def test_centre_groups_split_a_chain_that_connected_components_join(tmp_path):
    from msfkit.index import build_index
    from tests.msfkit.index_stores import write_vector_store

    x, chain, star = _chain_and_star()
    write_vector_store(tmp_path / "store", x)
    build_index(tmp_path / "store", tmp_path / "index", kind="flat", recall=1.0)
    connected = dedup(tmp_path / "index", threshold=0.95)
    found = {frozenset(g["row"].tolist()) for _, g in connected.groupby("group")}
    assert found == {frozenset(chain), frozenset(star)}
    assert (x[chain[0]] @ x[chain[-1]]) < 0.95  # connected joins images far beyond the threshold

    centre = dedup(tmp_path / "index", threshold=0.95, groups="centre")
    assert tuple(centre.columns) == (*COLUMNS, "centre")
    groups = {int(g["centre"].iloc[0]): frozenset(g["row"].tolist()) for _, g in centre.groupby("group")}
    # the star's middle has the most near neighbours; on the chain, the second (ties: the first row)
    # takes its two neighbours, the fourth the one left; each group is near its centre, not chained
    assert groups == {
        star[0]: frozenset(star),
        chain[1]: frozenset(chain[:3]),
        chain[3]: frozenset(chain[3:]),
    }
    for _, g in centre.groupby("group"):
        rows, c = g["row"].to_numpy(), int(g["centre"].iloc[0])
        similarity = x[rows] @ x[c]
        assert (similarity[rows != c] >= 0.95).all()
        np.testing.assert_allclose(g["score"][rows != c], similarity[rows != c], atol=1e-5)
    assert list(centre.groupby("group")["size"].first()) == [7, 3, 2]  # largest first
    with pytest.raises(MsfkitError, match="groups must be one of connected, centre"):
        dedup(tmp_path / "index", groups="chains")
