"""msfkit.embedding.ray_engine: shards embedded by Ray workers make the store a local run makes, a
killed worker's shard is retried, a stopped driver's rerun embeds only the rest; without Ray or a
cluster, one line and nothing written."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from msfkit.data.remote import open_url
from msfkit.embedding import ray_engine
from msfkit.models import MsfkitError
from msfkit.store import open_store
from msfkit.store.format import read_manifest
from msfkit.store.objects import read_commits
from tests.bad_images import write_bad_files
from tests.runs import embed

# every test here runs the installed command, a server or a Ray cluster: out of the quick loop
pytestmark = pytest.mark.slow


MSFKIT = Path(sys.executable).with_name("msfkit")
ROWS = 4  # files per shard: 14 files -> 4 shards


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photo_paths) -> Path:
    """8 real photos in two labelled folders and 6 bad files (error rows)."""
    root = tmp_path_factory.mktemp("ray") / "photos"
    for i, p in enumerate(photo_paths[:8]):
        (root / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, root / "ab"[i % 2] / p.name)
    write_bad_files(root, photo_paths[8])
    return root


@pytest.fixture(scope="module")
def clean(tmp_path_factory, folder, tiny_model_dir) -> Path:
    """The folder embedded by a local run."""
    out = tmp_path_factory.mktemp("stores") / "local"
    summary = embed([folder], str(tiny_model_dir), out, shard_rows=ROWS)
    assert (summary.embedded, summary.failed) == (8, 6)
    return out


def assert_same_store(got: Path, want: Path) -> None:
    """Every shard file byte for byte (vectors, meta, errors) and the manifest but for its times and
    run id."""
    files = sorted(p.relative_to(want) for p in want.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert (
        sorted(p.relative_to(got) for p in got.rglob("*") if p.is_file() and p.name != "manifest.json")
        == files
    )
    assert [f for f in files if (got / f).read_bytes() != (want / f).read_bytes()] == []
    a, b = read_manifest(got), read_manifest(want)
    assert untimed(a) == untimed(b) and a.complete


def untimed(manifest):
    plan = dataclasses.replace(manifest.plan, run="")
    return dataclasses.replace(manifest, created=None, updated=None, plan=plan)


@pytest.mark.ray
def test_a_ray_run_into_a_bucket_writes_the_local_runs_store(
    ray_local, s3_bucket, folder, clean, tiny_model_dir
):
    url = f"s3://{s3_bucket}/store"  # Ray workers embed, the driver commits each shard to the bucket
    summary = embed([folder], str(tiny_model_dir), url, shard_rows=ROWS, engine="ray")
    assert (summary.embedded, summary.failed, summary.store) == (8, 6, url)
    got, want = open_store(url), open_store(clean)
    np.testing.assert_array_equal(got.vectors, want.vectors)
    assert got.meta.equals(want.meta) and got.errors.equals(want.errors)
    assert sorted(read_commits(open_url(url))) == [0, 1, 2, 3]  # one commit record a shard


@pytest.mark.ray
def test_a_worker_killed_in_a_shard_is_retried(
    ray_local, tmp_path, monkeypatch, folder, clean, tiny_model_dir
):
    marker = tmp_path / "shard-2-crashed"
    monkeypatch.setattr(ray_engine, "CRASH_ONCE", (2, str(marker)))
    summary = embed([folder], str(tiny_model_dir), tmp_path / "ray", shard_rows=ROWS, engine="ray")
    assert marker.exists()  # the worker holding shard 2 did die (os._exit) in its first attempt
    assert (summary.embedded, summary.failed, summary.skipped) == (8, 6, 0)
    assert_same_store(tmp_path / "ray", clean)


@pytest.mark.ray
def test_a_stopped_drivers_rerun_embeds_only_the_uncommitted_shards(
    ray_local, tmp_path, monkeypatch, folder, clean, tiny_model_dir
):
    commit, committed = ray_engine.commit_job, []

    def stop_after_two(out, job, *rest):  # the driver stops (Ctrl-C) after two commits
        if len(committed) == 2:
            raise KeyboardInterrupt
        committed.append(job.shard)
        return commit(out, job, *rest)

    monkeypatch.setattr(ray_engine, "commit_job", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        embed([folder], str(tiny_model_dir), tmp_path / "ray", shard_rows=ROWS, engine="ray")
    first, committed = committed, []
    monkeypatch.setattr(ray_engine, "commit_job", lambda *job: committed.append(job[1].shard) or commit(*job))
    summary = embed([folder], str(tiny_model_dir), tmp_path / "ray", shard_rows=ROWS, engine="ray")
    assert sorted(first + committed) == [0, 1, 2, 3]  # each shard embedded once, over the two runs
    assert summary.skipped == sum(min(ROWS, 14 - ROWS * k) for k in first)
    assert_same_store(tmp_path / "ray", clean)


@pytest.mark.ray
def test_cuda_workers_on_a_cluster_without_gpus_is_one_line_before_any_write(
    ray_local, tmp_path, folder, tiny_model_dir
):
    if ray_local.cluster_resources().get("GPU"):
        pytest.skip("this Ray cluster has GPUs")
    with pytest.raises(MsfkitError, match=r"^--device cuda: the Ray cluster has no GPU"):
        embed([folder], str(tiny_model_dir), tmp_path / "ray", engine="ray", device="cuda")
    assert not (tmp_path / "ray").exists()


def ray_args(folder: Path, model: Path, out: Path) -> list[str]:
    return [str(folder), "-m", str(model), "-o", str(out), "--engine", "ray"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`msfkit embed ARGS...` through the installed command."""
    return subprocess.run(
        [str(MSFKIT), "embed", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_without_ray_the_engine_is_one_line_naming_the_extra(tmp_path, folder, tiny_model_dir):
    shim = tmp_path / "no-ray"
    (shim / "ray").mkdir(parents=True)
    (shim / "ray" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n"
    )
    out = tmp_path / "store"
    r = run_cli(*ray_args(folder, tiny_model_dir, out), env={"PYTHONPATH": str(shim)})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "Error: --engine ray needs Ray (ray is missing): pip install 'msfkit[ray]'"
    ]
    assert not out.exists()


def test_an_unreachable_cluster_is_one_line_and_nothing_written(tmp_path, folder, tiny_model_dir):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "store"
    r = run_cli(
        *ray_args(folder, tiny_model_dir, out),
        "--address",
        f"127.0.0.1:{port}",
    )
    assert r.returncode == 1 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"Error: cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert not out.exists()


# A Ray cluster of two nodes on this machine (ray.cluster_utils.Cluster, one CPU each, so the two
# workers are on different nodes) embeds the folder; in its own process, as Ray allows one cluster
# per driver.
TWO_NODES = """
import subprocess
import sys

import ray
from ray.cluster_utils import Cluster

import msfkit

folder, model, out, rows = sys.argv[1:]
small = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
cluster = Cluster(initialize_head=True, head_node_args={**small, "include_dashboard": False})
cluster.add_node(**small)
# with no address and no RAY_ADDRESS msfkit starts an instance of its own, not this running cluster
own = "import msfkit.cluster; print(msfkit.cluster.connect(None).get_runtime_context().gcs_address)"
other = subprocess.run([sys.executable, "-c", own], capture_output=True, text=True, check=True).stdout
print(other.strip() != cluster.address)
ray.init(address=cluster.address, log_to_driver=False)
try:
    print(len([n for n in ray.nodes() if n["Alive"]]))
    msfkit.embed([folder], model, out, shard_rows=int(rows), engine="ray")
finally:
    ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.ray
@pytest.mark.slow
def test_a_cluster_of_two_nodes_writes_the_local_runs_store(tmp_path, folder, clean, tiny_model_dir):
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'msfkit[ray]'")
    out = tmp_path / "ray"
    args = [folder, tiny_model_dir, out, ROWS]
    r = subprocess.run(
        [sys.executable, "-c", TWO_NODES, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    # connect(None) ran beside the cluster in an instance of its own; both nodes were up while the
    # shards were embedded
    assert r.stdout.split() == ["True", "2"]
    assert_same_store(out, clean)
