"""A rerun of `msfkit embed` over files that changed or disappeared since they were embedded:
changed rows replaced in place (row ids kept, vectors as a fresh embed gives), gone files counted,
an index of the old vectors refused in one line, a crash mid-replacement leaving a usable store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import msfkit
from msfkit.store import open_store
from msfkit.store import replace as store_replace
from tests.runs import embed

MSFKIT = str(Path(sys.executable).with_name("msfkit"))
ARGS = ["--shard-rows", "3", "--workers", "0", "-q"]


def _source(root: Path, photo_paths: list[Path]) -> Path:
    """Two class folders of real photos: 4 + 4."""
    for c, photos in enumerate((photo_paths[:4], photo_paths[4:8])):
        (root / f"class{c}").mkdir(parents=True)
        for p in photos:
            shutil.copy(p, root / f"class{c}" / p.name)
    return root


def _rewrite(path: Path, new_content: Path) -> None:
    """Give `path` another image's bytes, with an mtime that surely differs from the old one."""
    old = path.stat().st_mtime_ns
    shutil.copy(new_content, path)
    os.utime(path, ns=(old + 5_000_000_000, old + 5_000_000_000))


def _by_path(store) -> dict[str, np.ndarray]:
    return dict(zip(store.meta["path"], np.asarray(store.vectors), strict=True))


def _embed_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MSFKIT, "embed", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_changed_file_is_embedded_again_in_place_and_a_gone_one_is_counted(
    tmp_path, photo_paths, tiny_model_dir
):
    src, out = _source(tmp_path / "src", photo_paths), tmp_path / "store"
    first = embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)  # in this process
    assert first.embedded == 8  # the rerun, by the installed command, is the test
    msfkit.build_index(str(out), tmp_path / "index")
    before = open_store(out)
    old_paths, old_vectors = list(before.meta["path"]), np.array(before.vectors)
    old_hash = before.manifest_hash

    changed = src / "class0" / photo_paths[1].name
    _rewrite(changed, photo_paths[20])
    (src / "class1" / photo_paths[6].name).unlink()
    rerun = _embed_cli(str(src), "-m", str(tiny_model_dir), "-o", str(out), *ARGS, "--json")
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert (summary["changed"], summary["gone"], summary["embedded"], summary["skipped"]) == (1, 1, 0, 6)

    after = open_store(out)
    assert after.complete and list(after.meta["path"]) == old_paths  # same rows, same ids
    row = old_paths.index(f"class0/{photo_paths[1].name}")
    assert after.meta["bytes"][row] == changed.stat().st_size
    assert after.meta["mtime_ns"][row] == changed.stat().st_mtime_ns
    fresh = _by_path(msfkit.embed([src], str(tiny_model_dir), tmp_path / "fresh", workers=0))
    np.testing.assert_allclose(after.vectors[row], fresh[old_paths[row]], atol=1e-5)
    assert not np.allclose(after.vectors[row], old_vectors[row], atol=1e-3)
    others = [i for i in range(len(old_paths)) if i != row]
    np.testing.assert_array_equal(np.asarray(after.vectors)[others], old_vectors[others])
    assert after.manifest_hash != old_hash

    search = subprocess.run(
        [MSFKIT, "search", str(tmp_path / "index"), str(changed)], capture_output=True, text=True, timeout=300
    )
    assert search.returncode == 1 and search.stdout == ""
    assert search.stderr.startswith(f"Error: index {tmp_path / 'index'} is out of date with {out}")
    assert search.stderr.count("\n") == 1 and "--force" in search.stderr

    again = embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)
    assert (again.changed, again.gone, again.skipped) == (0, 1, 7)


@pytest.mark.slow
def test_an_index_stays_usable_when_its_store_only_grew(tmp_path, photo_paths, tiny_model_dir):
    src, out = _source(tmp_path / "src", photo_paths), tmp_path / "store"
    embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)
    index = msfkit.build_index(str(out), tmp_path / "index")
    then = open_store(out).manifest_hash
    shutil.copy(photo_paths[10], src / "class1" / photo_paths[10].name)
    summary = embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)
    assert (summary.embedded, summary.changed) == (1, 0)
    assert len(msfkit.open_index(tmp_path / "index")) == len(index) == 8
    grown = open_store(out)
    assert grown.manifest_hash != then and len(grown) == 9
    # the rows it held then (index.json records them) pick the one prefix to hash; without them, every one
    assert grown.grew_from(then, rows=8) and grown.grew_from(then)
    assert not grown.grew_from(then, rows=9) and not grown.grew_from(then, rows=6)
    _rewrite(src / "class0" / photo_paths[1].name, photo_paths[20])
    embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)
    assert not open_store(out).grew_from(then, rows=8) and not open_store(out).grew_from(then)


@pytest.mark.slow
def test_a_store_written_before_mtime_ns_is_checked_by_its_float_mtime(tmp_path, photo_paths, tiny_model_dir):
    src, out = _source(tmp_path / "src", photo_paths), tmp_path / "store"
    embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)
    for meta in (out / "meta").glob("*.parquet"):  # as an older msfkit wrote them
        pq.write_table(pq.read_table(meta).drop_columns(["mtime_ns"]), meta)
    store = open_store(out)
    assert store.meta["mtime_ns"].isna().all() and len(store) == 8
    untouched = embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)
    assert (untouched.changed, untouched.skipped) == (0, 8)
    _rewrite(src / "class1" / photo_paths[5].name, photo_paths[21])
    summary = embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)
    assert (summary.changed, summary.skipped) == (1, 7)
    fresh = _by_path(msfkit.embed([src], str(tiny_model_dir), tmp_path / "fresh", workers=0))
    got, changed = _by_path(open_store(out)), f"class1/{photo_paths[5].name}"
    np.testing.assert_allclose(got[changed], fresh[changed], atol=1e-5)


class _Crash(BaseException):
    """A kill: nothing catches it, nothing after it runs."""


@pytest.mark.parametrize("writes_before_crash", [0, 1], ids=["before-any-rename", "between-the-renames"])
@pytest.mark.slow
def test_a_crash_during_a_replacement_leaves_a_usable_store_that_the_next_run_finishes(
    tmp_path, photo_paths, tiny_model_dir, monkeypatch, writes_before_crash
):
    src, out = _source(tmp_path / "src", photo_paths), tmp_path / "store"
    embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)
    old = open_store(out)
    old_vectors, old_hash = np.array(old.vectors), old.manifest_hash
    changed = f"class0/{photo_paths[2].name}"
    _rewrite(src / changed, photo_paths[22])
    fresh = _by_path(msfkit.embed([src], str(tiny_model_dir), tmp_path / "fresh", workers=0))

    real, calls = store_replace.atomic_write, []

    def crashing(path, write, durable=False):
        assert durable  # a replacement is flushed to disk, not only renamed
        if len(calls) == writes_before_crash:
            raise _Crash
        calls.append(path)
        real(path, write, durable=durable)

    monkeypatch.setattr(store_replace, "atomic_write", crashing)
    with pytest.raises(_Crash):
        embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)
    monkeypatch.undo()

    crashed = open_store(out)  # whole: every row a vector, old or new, aligned with its path
    assert not crashed.complete and len(crashed) == 8
    row = list(crashed.meta["path"]).index(changed)
    expected = old_vectors[row] if writes_before_crash == 0 else fresh[changed]
    np.testing.assert_allclose(crashed.vectors[row], expected, atol=1e-5)
    assert crashed.manifest_hash != old_hash  # an index or a cache of the old vectors sees a change
    assert not any(p.name.startswith(".") for p in (out / "emb").iterdir())

    summary = embed([src], str(tiny_model_dir), out, workers=0, shard_rows=3)
    assert summary.changed == 1
    done = open_store(out)
    assert done.complete
    np.testing.assert_allclose(np.asarray(done.vectors)[row], fresh[changed], atol=1e-5)
    assert done.meta["mtime_ns"][row] == (src / changed).stat().st_mtime_ns
