"""msfkit.store.remote: stores written and read at a URL, against a real S3 API (moto in server mode on
127.0.0.1, through s3fs) and fsspec's memory store, compared with the same run into a local folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fsspec.config
import numpy as np
import pytest
from PIL import Image

import msfkit
from msfkit.data.remote import open_url
from msfkit.data.storage import locate
from msfkit.models import Encoder
from msfkit.models.errors import MsfkitError
from msfkit.sizes import cache_dir
from msfkit.store import is_store, open_store
from msfkit.store.objects import read_commits

RUN = dict(workers=0, progress=False)
NAMES = (("emb", "npy"), ("errors", "parquet"), ("meta", "parquet"))


@pytest.fixture(scope="module")
def encoder(tiny_model_dir) -> Encoder:
    return msfkit.load(tiny_model_dir)


def _images(folder: Path, count: int) -> Path:
    """`count` small noise images in class folders a/ and b/, and one zero-byte file (an error row)."""
    rng = np.random.default_rng(count)
    for i in range(count):
        path = folder / "ab"[i % 2] / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    (folder / "a" / "broken.jpg").write_bytes(b"")
    return folder


def _same_store(got, expected, *, facts=("path", "label", "width", "height", "bytes", "mtime", "mtime_ns")):
    assert got.complete and expected.complete
    assert got.meta[list(facts)].equals(expected.meta[list(facts)])  # rows, in order
    # bit for bit, read shard by shard (`vectors` of equal stores share one joined cache file)
    assert np.array_equal(np.concatenate(got.shard_vectors()), np.concatenate(expected.shard_vectors()))
    assert got.errors.equals(expected.errors)
    assert got.settings == expected.settings and got.model.fingerprint == expected.model.fingerprint


def _forget_copies() -> None:
    """Remove this machine's staging and read copies: what another machine starts from."""
    shutil.rmtree(cache_dir("stores"), ignore_errors=True)


def test_a_store_written_to_s3_reads_back_as_the_local_run_s(s3_bucket, encoder, tmp_path):
    url, images = f"s3://{s3_bucket}/store", _images(tmp_path / "images", 5)
    got = msfkit.embed([images], encoder, url, shard_rows=3, **RUN)
    expected = msfkit.embed([images], encoder, f"file://{tmp_path}/local", shard_rows=3, **RUN)  # the disk
    assert expected.parts[0].root == tmp_path / "local"
    assert got.run.store == url and (got.run.embedded, got.run.failed) == (5, 1)
    _same_store(got, expected)
    assert got.parts[0].url == url and got.source_root == expected.source_root
    # read through a copy linked to the one the run wrote through: nothing downloaded twice
    assert (got.parts[0].root / "emb" / "00000.npy").stat().st_nlink == 2
    assert sorted(read_commits(open_url(url))) == [0, 1]
    assert open_url(url).listdir() == ["commits", "emb", "errors", "errors.parquet", "manifest.json", "meta"]
    _forget_copies()  # another machine reads it
    assert is_store(url) and not is_store(f"s3://{s3_bucket}/nothing")
    _same_store(open_store(url), expected)


@pytest.mark.slow  # a decoding worker process
def test_images_under_an_s3_prefix_embed_as_the_same_files_on_disk(s3_bucket, encoder, tmp_path):
    local = _images(tmp_path / "images", 4)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        open_url(f"s3://{s3_bucket}/photos/{path.relative_to(local).as_posix()}").write_bytes(
            path.read_bytes()
        )
    # decoded in a worker process, as a large run decodes (s3fs in a forked process)
    got = msfkit.embed(
        [f"s3://{s3_bucket}/photos"], encoder, f"s3://{s3_bucket}/store", workers=1, progress=False
    )
    expected = msfkit.embed([local], encoder, tmp_path / "local", **RUN)
    _same_store(got, expected, facts=("path", "label", "width", "height", "bytes"))
    assert list(got.meta["label"]) == ["a", "a", "b", "b"] and list(got.errors["path"]) == ["a/broken.jpg"]
    assert got.source_root == f"s3://{s3_bucket}/photos"


@pytest.mark.slow
def test_a_run_killed_mid_way_leaves_committed_shards_and_a_rerun_elsewhere_completes_it(
    s3_bucket, tiny_model_dir, encoder, tmp_path
):
    src, url = _images(tmp_path / "images", 11), f"s3://{s3_bucket}/store"  # 12 files: 6 shards of 2
    args = ["embed", str(src), "-m", str(tiny_model_dir), "-o", url, "--shard-rows", "2"]
    args += ["--workers", "0", "--no-draft", "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "msfkit.cli", *args], start_new_session=True)
    store, deadline = open_url(url), time.monotonic() + 120  # (this process's filesystem, listed afresh)
    while not read_commits(store) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    records = read_commits(store)
    assert 1 <= len(records) < 6
    seen = open_store(url)  # a reader sees the committed shards, nothing else
    assert not seen.complete and len(seen) == sum(r["rows"] for r in records.values())
    assert [s.name for s in seen.parts[0].shards] == [f"{k:05d}" for k in sorted(records)]

    _forget_copies()  # the rerun has no staging copy: it continues from the remote commit records
    rerun = msfkit.embed([src], encoder, url, shard_rows=2, **RUN).run
    assert rerun.skipped == sum(r["rows"] + r["failed"] for r in records.values())
    assert rerun.embedded + rerun.failed + rerun.skipped == 12
    expected = msfkit.embed([src], encoder, tmp_path / "local", shard_rows=2, **RUN)
    _same_store(open_store(url), expected)
    assert sorted(read_commits(store)) == list(range(6))


def test_a_changed_object_is_embedded_again_and_its_shard_pushed_under_new_names(encoder, tmp_path):
    base, files = f"memory://{uuid.uuid4().hex}", sorted(_images(tmp_path / "images", 2).rglob("*.png"))
    for i, path in enumerate(files):
        locate(f"{base}/photos/{i}.png").write_bytes(path.read_bytes())
    store = msfkit.embed([f"{base}/photos"], encoder, f"{base}/store", **RUN)
    before = np.array(store.vectors)
    new = tmp_path / "new.png"
    Image.fromarray(np.full((30, 36, 3), 200, np.uint8)).save(new)
    locate(f"{base}/photos/1.png").write_bytes(new.read_bytes())  # replaced since
    again = msfkit.embed([f"{base}/photos"], encoder, f"{base}/store", **RUN)
    assert (again.run.changed, again.run.embedded, again.run.skipped) == (1, 0, 1)
    record = read_commits(locate(f"{base}/store"))[0]
    assert record["generation"] == 1
    assert sorted(record["objects"]) == [f"{kind}/00000.g1.{ext}" for kind, ext in NAMES]
    _forget_copies()
    after = open_store(f"{base}/store")
    alone = msfkit.embed([new], encoder, f"{base}/alone", **RUN)
    assert np.array_equal(after.vectors[0], before[0])
    assert np.array_equal(after.vectors[1], alone.vectors[0]) and not np.array_equal(
        after.vectors[1], before[1]
    )
    assert after.meta["bytes"][1] == new.stat().st_size and after.meta["width"][1] == 36


def test_shard_parts_at_a_url_read_as_one_store(encoder, tmp_path):
    url, images = f"memory://{uuid.uuid4().hex}/store", _images(tmp_path / "images", 4)
    for i in range(2):
        msfkit.embed([images], encoder, url, shard=(i, 2), **RUN)
        msfkit.embed([images], encoder, tmp_path / "local", shard=(i, 2), **RUN)
    got, expected = open_store(url), open_store(tmp_path / "local")
    assert [p.url for p in got.parts] == [f"{url}/part-0000{i}-of-00002" for i in range(2)]
    _same_store(got, expected)


def test_overwrite_replaces_the_store_at_the_url(encoder, tmp_path):
    url, files = f"memory://{uuid.uuid4().hex}/store", sorted(_images(tmp_path / "images", 2).rglob("*.png"))
    msfkit.embed(files, encoder, url, shard_rows=1, **RUN)
    store = msfkit.embed(files[:1], encoder, url, shard_rows=2, overwrite=True, **RUN)
    assert sorted(read_commits(locate(url))) == [0] and len(store) == 1
    assert locate(url).child("emb").listdir() == ["00000.npy"]  # the old shards' objects are gone


def test_a_damaged_remote_store_is_one_line(encoder, tmp_path):
    url, files = f"memory://{uuid.uuid4().hex}/store", sorted(_images(tmp_path / "images", 2).rglob("*.png"))
    msfkit.embed(files, encoder, url, **RUN)
    locate(url).child("emb", "00000.npy").write_bytes(b"short")
    _forget_copies()
    with pytest.raises(MsfkitError, match=r"emb/00000.npy has 5 bytes, its commit record says \d+; the"):
        open_store(url)
    locate(url).child("emb", "00000.npy").remove()
    with pytest.raises(MsfkitError, match=r"emb/00000.npy is missing; the store is damaged \(embed it"):
        msfkit.embed(files, encoder, url, **RUN)
    assert len(msfkit.embed(files, encoder, url, overwrite=True, **RUN)) == 2


def test_an_unknown_protocol_is_one_line(encoder, tmp_path):
    with pytest.raises(MsfkitError, match=r"^nosuch://bucket/store: unknown storage protocol nosuch://$"):
        msfkit.embed([_images(tmp_path / "images", 1)], encoder, "nosuch://bucket/store", **RUN)


@pytest.mark.parametrize("case", ["bucket", "credentials", "foreign"])
def test_an_unusable_store_url_is_one_line_and_nothing_is_written(
    case, s3_bucket, encoder, monkeypatch, tmp_path
):
    monkeypatch.setattr(fsspec.config, "conf", {})  # options given below are this test's only
    url, images = f"s3://{s3_bucket}/store", _images(tmp_path / "images", 1)
    if case == "bucket":
        url, expected = f"s3://{s3_bucket}-gone/store", f"no bucket {s3_bucket}-gone"
    elif case == "credentials":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        expected = "no credentials for s3://"
    else:
        locate(f"{url}/notes.txt").write_bytes(b"mine")
        expected = "holds objects but no embedding store"
    with pytest.raises(MsfkitError) as raised:
        msfkit.embed([images], encoder, url, **RUN)
    assert expected in str(raised.value) and "\n" not in str(raised.value)
    bucket = locate(f"s3://{s3_bucket}", {"key": "testing", "secret": "testing"})  # (credentials of its own)
    assert bucket.find() == (["store/notes.txt"] if case == "foreign" else [])
    if case == "credentials":  # given as storage options, they reach every filesystem the run opens
        store = msfkit.embed([images], encoder, url, storage_options={"key": "testing", "secret": "testing"})
        assert len(store) == 1 and sorted(read_commits(bucket.child("store"))) == [0]
