"""The embedding store on disk: shards, manifest, reading several stores and --shard parts as one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from msfkit.models import MsfkitError
from msfkit.store import open_store
from msfkit.store.format import (
    FORMAT_VERSION,
    EmbedSettings,
    Manifest,
    ModelRecord,
    part_name,
    read_manifest,
    write_manifest,
)
from msfkit.store.shards import committed_shards, shard_info
from msfkit.store.writer import merge_errors, write_shard


def _manifest(fingerprint="abc", root="/photos", dim=4, part=None, complete=True):
    model = ModelRecord("/models/m", None, fingerprint, {})
    return Manifest(model, dim, root, part=part, complete=complete)


def _meta(paths, label=None):
    n = len(paths)
    return {
        "path": paths,
        "label": [label] * n,
        "width": [10] * n,
        "height": [20] * n,
        "bytes": [5] * n,
        "mtime": [1.5] * n,
    }


def _write_store(root, sizes, seed=0, **manifest):
    """A store with shards of the given sizes (one error per shard); returns its vectors."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    m = _manifest(**manifest)
    blocks = []
    for k, n in enumerate(sizes):
        v = rng.standard_normal((n, m.dim)).astype(np.float32)
        write_shard(
            root,
            k,
            v,
            _meta([f"{root.name}/{k}/{i}.jpg" for i in range(n)], label="cls"),
            [(f"bad{k}.jpg", "zero bytes")],
        )
        blocks.append(v)
    m.shards = [shard_info(root, k) for k in range(len(sizes))]
    merge_errors(root, range(len(sizes)))
    write_manifest(root, m)
    return np.concatenate(blocks)


def test_shards_read_back_in_order_with_metadata_and_errors(tmp_path):
    expected = _write_store(tmp_path / "s", [3, 0, 5])
    store = open_store(tmp_path / "s")
    assert len(store) == 8 and store.dim == 4 and store.normalized and store.complete
    np.testing.assert_array_equal(store.vectors, expected)
    assert sorted((tmp_path / "s" / "emb").iterdir())[0].name == "00000.npy"
    meta = store.meta
    assert list(meta.columns) == ["path", "label", "width", "height", "bytes", "mtime", "mtime_ns"]
    assert meta["path"].tolist()[:4] == ["s/0/0.jpg", "s/0/1.jpg", "s/0/2.jpg", "s/2/0.jpg"]
    assert store.errors.to_dict("records")[1] == {"path": "bad1.jpg", "reason": "zero bytes"}
    assert [str(p) for p in store.absolute_paths()[:1]] == ["/photos/s/0/0.jpg"]
    assert isinstance(store.shard_vectors()[0], np.memmap)  # not read into memory


def test_iter_batches_streams_across_shard_boundaries(tmp_path):
    expected = _write_store(tmp_path / "s", [3, 0, 5, 2])
    blocks = list(open_store(tmp_path / "s").iter_batches(4))
    assert [(start, len(b)) for start, b in blocks] == [(0, 4), (4, 4), (8, 2)]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), expected)


def test_labels_missing_are_none(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    write_shard(root, 0, np.zeros((2, 4), np.float32), _meta(["a.jpg", "b.jpg"]), [])
    write_manifest(root, _manifest(complete=False))
    assert open_store(root).meta["label"].tolist() == [None, None]


def test_an_interrupted_store_shows_only_committed_shards(tmp_path):
    root = tmp_path / "s"
    _write_store(root, [2, 3])
    write_manifest(root, dataclasses.replace(read_manifest(root), complete=False, shards=[]))
    # a run killed between renaming the vectors and the metadata of shard 2
    np.save(root / "emb" / "00002.npy", np.ones((7, 4), np.float32))
    (root / "meta" / ".00003.parquet.tmp123").write_bytes(b"half a file")
    assert committed_shards(root) == [0, 1]
    store = open_store(root)
    assert len(store) == 5 and not store.complete


def test_manifest_hash_ignores_timestamps_but_not_content(tmp_path):
    root = tmp_path / "s"
    _write_store(root, [2])
    first = open_store(root).manifest_hash
    manifest = read_manifest(root)
    write_manifest(root, dataclasses.replace(manifest, updated="later", settings=EmbedSettings("bf16")))
    assert open_store(root).manifest_hash == first
    write_manifest(root, dataclasses.replace(manifest, source_root="/elsewhere"))
    assert open_store(root).manifest_hash != first


def test_several_stores_and_a_folder_of_parts_read_as_one(tmp_path):
    a = _write_store(tmp_path / "parts" / part_name(0, 2), [2, 1], seed=1, part=(0, 2))
    b = _write_store(tmp_path / "parts" / part_name(1, 2), [3], seed=2, part=(1, 2))
    store = open_store(tmp_path / "parts")
    np.testing.assert_array_equal(store.vectors, np.concatenate([a, b]))
    assert len(store.meta) == 6 and len(store.errors) == 3
    assert len(store) == 6 and [len(p.shards) for p in store.parts] == [2, 1]
    assert store.source_root is not None and str(store.source_root) == "/photos"
    listed = open_store([tmp_path / "parts" / part_name(1, 2), tmp_path / "parts" / part_name(0, 2)])
    np.testing.assert_array_equal(listed.vectors, np.concatenate([b, a]))


def test_a_missing_part_is_an_error(tmp_path):
    _write_store(tmp_path / "parts" / part_name(1, 3), [1], part=(1, 3))
    with pytest.raises(MsfkitError, match="parts 0, 2 of 3 are missing"):
        open_store(tmp_path / "parts")


def test_stores_of_different_models_do_not_mix(tmp_path):
    _write_store(tmp_path / "a", [1], fingerprint="one")
    _write_store(tmp_path / "b", [1], fingerprint="two")
    with pytest.raises(MsfkitError, match="different models"):
        open_store([tmp_path / "a", tmp_path / "b"])


def test_not_a_store_and_future_format_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MsfkitError, match="not an embedding store"):
        open_store(tmp_path / "empty")
    root = tmp_path / "future"
    _write_store(root, [1])
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(MsfkitError, match=f"format_version {FORMAT_VERSION + 1}; .* upgrade msfkit"):
        open_store(root)


def _documented_hash(manifest: dict) -> str:
    """docs/formats.md's manifest hash of a complete store, computed from its manifest.json."""
    shards = manifest["shards"]
    counts = {"embedded": sum(s["rows"] for s in shards), "failed": sum(s["failed"] for s in shards)}
    manifest = {**manifest, "counts": counts}
    keys = ("format_version", "model", "dim", "dtype", "normalized", "source_root", "counts", "shards")
    text = json.dumps({k: manifest.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_a_version_1_store_reads_with_its_hash_and_is_rewritten_as_today_s(tmp_path):
    root = tmp_path / "old"
    _write_store(root, [2, 3])
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 2
    old = {
        **manifest,
        "format_version": 1,
        "settings": {"precision": "bf16", "draft": False, "shard_rows": 2},
    }
    (root / "manifest.json").write_text(json.dumps(old))
    store = open_store(root)
    assert store.manifest_hash == _documented_hash(old) != _documented_hash(manifest)
    assert len(store) == 5 and store.settings == EmbedSettings("bf16", False, 2)
    write_manifest(root, read_manifest(root))  # what a run continuing it does
    assert json.loads((root / "manifest.json").read_text())["format_version"] == FORMAT_VERSION
    assert open_store(root).manifest_hash == _documented_hash(manifest)


def test_vectors_of_many_shards_are_one_memory_map_copied_once(tmp_path, monkeypatch):
    from tests.msfkit.index_stores import clustered_vectors, write_vector_store

    x = clustered_vectors(2500, 8, 4, seed=0)
    root = write_vector_store(tmp_path / "store", x, shard_rows=1000)  # 3 shards
    first = open_store(root).vectors
    assert isinstance(first, np.memmap) and not first.flags.writeable
    np.testing.assert_array_equal(first, x)
    cached = sorted(Path(os.environ["MSFKIT_CACHE"]).glob("vectors/*.npy"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = open_store(root)  # another reader (another process would do the same)
    assert isinstance(again.vectors, np.memmap) and again.vectors is again.vectors
    assert cached[0].stat().st_mtime_ns == stamp  # mapped, not copied again
