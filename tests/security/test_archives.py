"""The archive and list boundary (threat: a data set from the internet): a member or list entry named
`../../outside.jpg` or `/abs.jpg` is an error row, never a file outside its source; a tar cut short
is reported, never read as a shorter archive; a hard-link member is read as its target. Through the
installed `msfkit` command for the exit path (further cases, and the hostile data's store, through
its click group in this process), the store read from its files, and real HTTP to the served index
(its store and index made in this process)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.commands import in_process
from tests.msfkit.serve.server import Server, msfkit_command, server_env
from tests.runs import embed

# every test here runs the installed command, a server or a Ray cluster: out of the quick loop
pytestmark = pytest.mark.slow


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 1_700_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def _msfkit(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*msfkit_command(), *args], capture_output=True, text=True, env=env, timeout=300)


def _table(folder: Path, name: str) -> pd.DataFrame:
    """A store table read from its files: errors.parquet, or the meta shards joined."""
    if name == "errors":
        return pd.read_parquet(folder / "errors.parquet")
    return pd.concat([pd.read_parquet(p) for p in sorted((folder / "meta").glob("*.parquet"))])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, photo_paths):
    """data/ holding a tar and a webdataset shard with members that climb out or are absolute, a hard
    link and a symlink member, and a path list and a table that climb out; a real outside.jpg (another
    photo) sits where `../../outside.jpg` would land."""
    base = tmp_path_factory.mktemp("hostile")
    data = base / "data"
    data.mkdir()
    (base / "outside.jpg").write_bytes(photo_paths[5].read_bytes())
    (data / "safe.jpg").write_bytes(photo_paths[3].read_bytes())
    a, b, c = (p.read_bytes() for p in photo_paths[:3])
    with tarfile.open(data / "shard.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        _member(tar, "./a.jpg", a)
        _member(tar, "../../outside.jpg", b)
        _member(tar, "/abs.jpg", b)
        _member(tar, "twin.jpg", type=tarfile.LNKTYPE, linkname="./a.jpg")
        _member(tar, "lost.jpg", type=tarfile.LNKTYPE, linkname="../outside.jpg")
        _member(tar, "sym.jpg", type=tarfile.SYMTYPE, linkname="../../outside.jpg")
    with tarfile.open(data / "wds-000.tar", "w") as tar:
        _member(tar, "k1.jpg", c)
        _member(tar, "k1.cls", b"cat")
        _member(tar, "../k2.jpg", b)
        _member(tar, "../k2.cls", b"dog")
    (data / "picks.txt").write_text("safe.jpg\n../outside.jpg\n" + str(base / "outside.jpg") + "\n")
    pd.DataFrame({"path": ["safe.jpg", "../../outside.jpg"], "label": ["x", "y"]}).to_csv(
        data / "picks.csv", index=False
    )
    return base


@pytest.fixture(scope="module")
def embedded(hostile, tiny_model_dir):
    data = hostile / "data"
    inputs = [data / "shard.tar", data / "wds-000.tar", data / "picks.txt", data / "picks.csv"]
    # through the click group in this process: the store it writes is what these tests read
    run = in_process("embed", *inputs, "-m", tiny_model_dir, "-o", hostile / "st", "--workers", "0")
    assert run.returncode == 0, run.stderr
    return hostile / "st"


def test_unsafe_member_and_list_names_are_error_rows_and_name_nothing_outside(embedded):
    meta, errors = _table(embedded, "meta"), _table(embedded, "errors")
    assert sorted(meta["path"]) == ["safe.jpg", "shard.tar/a.jpg", "shard.tar/twin.jpg", "wds-000.tar/k1.jpg"]
    assert not any(".." in p or p.startswith("/") for p in meta["path"])
    reasons = dict(zip(errors["path"], errors["reason"], strict=True))
    assert reasons["shard.tar/../../outside.jpg"] == "unsafe member name: has a '..' part"
    assert reasons["shard.tar//abs.jpg"] == "unsafe member name: absolute"
    assert reasons["wds-000.tar/../k2.jpg"] == "unsafe member name: has a '..' part"
    assert reasons["picks.txt/../outside.jpg"] == "unsafe path in the list picks.txt: has a '..' part"
    assert reasons["picks.csv/../../outside.jpg"] == "unsafe path in the list picks.csv: has a '..' part"
    absolute = [p for p in reasons if p.startswith("picks.txt//")]
    assert [reasons[p] for p in absolute] == ["unsafe path in the list picks.txt: absolute"]
    assert reasons["shard.tar/sym.jpg"] == "a symbolic link member (not followed)"
    assert reasons["shard.tar/lost.jpg"].startswith("a hard link to '../outside.jpg'")
    assert dict(zip(meta["path"], meta["label"], strict=True))["wds-000.tar/k1.jpg"] == "cat"


def test_a_hard_link_member_is_read_as_its_target(embedded):
    meta = _table(embedded, "meta").reset_index(drop=True)
    vectors = np.concatenate([np.load(p) for p in sorted((embedded / "emb").glob("*.npy"))])
    row = {path: i for i, path in enumerate(meta["path"])}
    assert meta["bytes"][row["shard.tar/twin.jpg"]] == meta["bytes"][row["shard.tar/a.jpg"]]
    assert np.array_equal(vectors[row["shard.tar/twin.jpg"]], vectors[row["shard.tar/a.jpg"]])


def test_the_served_index_never_sends_the_file_a_member_name_points_at(tmp_path, photo_paths, tiny_model_dir):
    """The issue's reproduction: a tar holding `a.jpg` and a JPEG member named `../../outside.jpg`
    beside a real, different `outside.jpg`; `GET /api/rows/N/image` used to send that outside file."""
    (tmp_path / "data").mkdir()
    outside = photo_paths[5].read_bytes()
    (tmp_path / "outside.jpg").write_bytes(outside)
    with tarfile.open(tmp_path / "data" / "shard.tar", "w") as tar:
        _member(tar, "a.jpg", photo_paths[0].read_bytes())
        _member(tar, "../../outside.jpg", photo_paths[1].read_bytes())
    from msfkit.index import build_index

    # the store and index in this process: the served index is the test
    summary = embed([tmp_path / "data" / "shard.tar"], str(tiny_model_dir), tmp_path / "st", workers=0)
    assert (summary.embedded, summary.failed) == (1, 1)
    build_index(tmp_path / "st", tmp_path / "ix")
    env = server_env(tmp_path / "cache", tmp_path / "hf")
    with Server(tmp_path / "ix", env) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        rows = client.get("/api/health").json()["rows"]
        paths = [client.get(f"/api/rows/{row}").json()["path"] for row in range(rows)]
        sent = [client.get(f"/api/rows/{row}/image").content for row in range(rows)]
    assert outside not in sent and sent == [photo_paths[0].read_bytes()]
    assert paths == [str(tmp_path / "data" / "shard.tar" / "a.jpg")]


@pytest.mark.parametrize(
    ("cut", "says", "run"),
    [
        (lambda sizes: sizes[0] + sizes[1] + sizes[2] + 100, "ends inside the header of member 4", _msfkit),
        (  # the further case through the click group in this process
            lambda sizes: sizes[0] + sizes[1] + sizes[2],
            "ends after 3 members without the end-of-archive",
            in_process,
        ),
    ],
)
def test_a_tar_cut_inside_a_header_is_reported_not_read_as_a_shorter_archive(
    cut, says, run, tmp_path, photo_paths, tiny_model_dir
):
    whole = tmp_path / "whole.tar"
    with tarfile.open(whole, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i, photo in enumerate(photo_paths[:5]):
            _member(tar, f"m{i}.jpg", photo.read_bytes())
        sizes = [512 + -(-m.size // 512) * 512 for m in tar.getmembers()]
    (tmp_path / "cut").mkdir()
    shard = tmp_path / "cut" / "shard.tar"
    shard.write_bytes(whole.read_bytes()[: cut(sizes)])
    r = run("embed", str(shard), "-m", str(tiny_model_dir), "-o", str(tmp_path / "st"), "--workers", "0")
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"{shard}: truncated or damaged tar: it {says}" in r.stderr
