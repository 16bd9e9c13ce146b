"""msfkit.store.objects: shards committed as whole objects plus a commit record written last, on a real
S3 API (moto in server mode on 127.0.0.1, through s3fs), fsspec's memory store and the local disk."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pyarrow as pa
import pytest

from msfkit.data.storage import locate
from msfkit.models.errors import MsfkitError
from msfkit.store.objects import (
    check_commit,
    commit_shard,
    npy_bytes,
    parquet_bytes,
    put_object,
    read_commits,
    read_object,
    write_commit,
)

# A run that writes shards 0..N-1 of a store, skipping the committed ones, PAUSE seconds apart: the
# same loop a resumed `msfkit embed` follows. Run as a child process (killed with SIGKILL) and in-process.
RUN = """
import sys, time
import numpy as np, pyarrow as pa
from msfkit.data.storage import locate
from msfkit.store.objects import commit_shard, npy_bytes, parquet_bytes, read_commits

store, n, pause = locate(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
done = read_commits(store)
for k in range(n):
    if k in done:
        continue
    vectors = np.random.default_rng(k).standard_normal((50 + k, 64)).astype(np.float32)
    meta = pa.table({"path": [f"photos/{k}-{i}.jpg" for i in range(len(vectors))]})
    objects = {f"emb/{k:05d}.npy": npy_bytes(vectors), f"meta/{k:05d}.parquet": parquet_bytes(meta)}
    commit_shard(store, {"name": f"{k:05d}", "rows": len(vectors), "failed": 0}, objects)
    time.sleep(pause)
"""


def _shard(k: int) -> dict[str, bytes]:
    vectors = np.full((3, 4), k, np.float32)
    meta = pa.table({"path": [f"{k}/{i}.jpg" for i in range(3)]})
    return {f"emb/{k:05d}.npy": npy_bytes(vectors), f"meta/{k:05d}.parquet": parquet_bytes(meta)}


def _entry(k: int, failed: int = 0) -> dict:
    return {"name": f"{k:05d}", "rows": 3, "failed": failed}


def _contents(store) -> dict[str, bytes]:
    """Every committed object (and record) of `store`, read back, by name."""
    out = {}
    for k, record in read_commits(store).items():
        out[f"commits/{k:05d}.json"] = json.dumps(record, sort_keys=True).encode()
        out |= {name: read_object(store, name) for name in record["objects"]}
    return out


def test_a_committed_shard_reads_back_from_s3(s3_bucket):
    store = locate(f"s3://{s3_bucket}/store")
    record = commit_shard(store, _entry(3, failed=1), _shard(3))
    assert record == {
        "name": "00003",
        "rows": 3,
        "failed": 1,
        "objects": {name: len(data) for name, data in _shard(3).items()},
    }
    again = locate(f"s3://{s3_bucket}/store")  # another client, as a reader in another process
    assert read_commits(again) == {3: record}
    check_commit(again, record)
    assert np.load(again.child("emb/00003.npy").open(), allow_pickle=False).tolist() == [[3.0] * 4] * 3


def test_objects_without_a_commit_record_are_not_seen(s3_bucket):
    """What a run killed between a shard's objects and its record leaves: invisible to readers."""
    store = locate(f"s3://{s3_bucket}/store")
    commit_shard(store, _entry(0), _shard(0))
    for name, data in _shard(1).items():
        put_object(store, name, data)
    assert store.child("emb").listdir() == ["00000.npy", "00001.npy"]
    assert list(read_commits(store)) == [0]


@pytest.mark.slow
def test_a_run_killed_mid_way_and_run_again_equals_a_clean_run(s3_bucket, tmp_path, monkeypatch):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    killed = f"s3://{s3_bucket}/killed"
    child = subprocess.Popen([sys.executable, script, killed, "6", "0.3"], cwd=os.getcwd())
    store = locate(killed)
    deadline = time.monotonic() + 60
    while len(read_commits(store)) < 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    seen = read_commits(store)
    assert 2 <= len(seen) < 6, "the kill came too late to test anything"
    for record in seen.values():
        check_commit(store, record)  # a reader at the kill sees whole shards only
    clean = f"s3://{s3_bucket}/clean"
    for store_url in (killed, clean):  # the rerun, then a clean run: in this process
        monkeypatch.setattr(sys, "argv", ["run.py", store_url, "6", "0"])
        runpy.run_path(str(script), run_name="__main__")
    resumed, fresh = _contents(locate(killed)), _contents(locate(clean))
    assert sorted(resumed) == sorted(fresh) and len(fresh) == 18
    assert resumed == fresh  # same rows, same order, same vectors, byte for byte


def test_a_replacement_switches_to_new_objects_with_its_record(s3_bucket):
    store = locate(f"s3://{s3_bucket}/store")
    commit_shard(store, _entry(0), _shard(0))
    new = {name.replace("7.", "0.g1."): data for name, data in _shard(7).items()}  # shard 0's, other rows
    record = commit_shard(store, {**_entry(0), "generation": 1}, new)
    assert read_commits(store) == {0: record} and sorted(record["objects"]) == sorted(new)
    assert np.load(store.child("emb/00000.g1.npy").open(), allow_pickle=False)[0, 0] == 7
    check_commit(store, record)


def test_a_local_store_commits_by_renaming_each_object_into_place(tmp_path):
    store = locate(tmp_path / "store")
    record = commit_shard(store, _entry(0), _shard(0))
    assert read_commits(store) == {0: record}
    written = sorted(str(p.relative_to(tmp_path / "store")) for p in (tmp_path / "store").rglob("*.*"))
    assert written == ["commits/00000.json", "emb/00000.npy", "meta/00000.parquet"]  # no temporary left


def test_the_memory_store_commits_as_s3_does():
    store = locate(f"memory://msfkit-{uuid.uuid4().hex}")
    records = {k: commit_shard(store, _entry(k), _shard(k)) for k in (1, 0)}
    assert read_commits(store) == records and list(read_commits(store)) == [0, 1]


def test_a_shortened_object_is_a_damaged_store(s3_bucket):
    store = locate(f"s3://{s3_bucket}/store")
    record = commit_shard(store, _entry(0), _shard(0))
    data = read_object(store, "emb/00000.npy")
    put_object(store, "emb/00000.npy", data[:-8])
    with pytest.raises(
        MsfkitError, match=rf"emb/00000.npy has {len(data) - 8} bytes, its commit record says"
    ):
        check_commit(store, record)
    store.fs.rm_file(store.child("meta/00000.parquet").path)
    put_object(store, "emb/00000.npy", data)
    with pytest.raises(MsfkitError, match=r"/store/meta/00000.parquet is missing; the store is damaged"):
        check_commit(store, record)


@pytest.mark.parametrize(
    "record",
    [
        b"{not json",
        b'{"name": "00000", "rows": 1, "failed": 0, "objects": {"../other/emb.npy": 4}}',
        b'{"name": "00007", "rows": 1, "failed": 0, "objects": {}}',
        b'{"name": "00000", "objects": {}}',
    ],
)
def test_a_bad_commit_record_is_one_line(record):
    store = locate(f"memory://msfkit-{uuid.uuid4().hex}")
    put_object(store, "commits/00000.json", record)
    with pytest.raises(
        MsfkitError, match=r"commits/00000.json: (unreadable commit record|not a commit record)"
    ):
        read_commits(store)


def test_names_other_than_records_under_commits_are_ignored():
    store = locate(f"memory://msfkit-{uuid.uuid4().hex}")
    write_commit(store, 2, {"name": "00002", "rows": 0, "failed": 0, "objects": {}})
    put_object(store, "commits/notes.txt", b"x")
    assert list(read_commits(store)) == [2]
