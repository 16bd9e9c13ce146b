"""`msfkit index` on disk and with --engine ray, run by the installed command (a test's further cases
through the click group in this process): clean JSON on stdout (faiss's own prints kept out of it),
and one `Error:` line, with nothing written, when Ray is missing or its cluster does not answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from msfkit.cli.index import index
from msfkit.index.plan import TYPES, WORKLOADS
from tests.commands import in_process
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


def msfkit(*args, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MSFKIT, *map(str, args)], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    x = clustered_vectors(2000, 16, clusters=10, seed=0)
    return write_vector_store(tmp_path_factory.mktemp("store") / "s", x, shard_rows=500)


@pytest.mark.slow
def test_an_index_on_disk_is_built_and_searched_with_clean_json(store, tmp_path):
    r = msfkit("index", store, "-o", tmp_path / "ix", "--on-disk", "--memory", "1MB", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["storage"] == "disk" and info["type"] == "ivf" and info["build"]["engine"] == "local"
    assert info["files"]["index.ivfdata"] == (tmp_path / "ix" / "index.ivfdata").stat().st_size
    r = msfkit("search", tmp_path / "ix", f"{store}:0,7", "-k", "3", "--json")
    assert r.returncode == 0, r.stderr
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(hits) == 6 and [h["row"] for h in hits if h["rank"] == 1] == [0, 7]
    r = in_process("index", store, "-o", tmp_path / "ix2", "--on-disk")
    assert r.returncode == 0, r.stderr
    assert "on disk," in r.stdout and "in RAM when searched" in r.stdout


def test_without_ray_the_engine_is_one_line_naming_the_extra(store, tmp_path):
    shadow = tmp_path / "no-ray" / "ray"  # an environment where `import ray` fails, as without the extra
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\", name='ray')\n")
    r = msfkit("index", store, "-o", tmp_path / "ix", "--engine", "ray", env={"PYTHONPATH": shadow.parent})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "Error: --engine ray needs Ray (ray is missing): pip install 'msfkit[ray]'"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-ray"]


def test_a_ray_cluster_that_does_not_answer_is_one_line_at_once(store, tmp_path):
    pytest.importorskip("ray")
    for address, message in [
        ("127.0.0.1:1", "Error: cannot reach the Ray cluster at 127.0.0.1:1 (Connection refused)"),
        ("nowhere", "Error: Ray address 'nowhere': expected auto or HOST:PORT"),
    ]:
        r = msfkit("index", store, "-o", tmp_path / "ix", "--engine", "ray", "--address", address)
        assert r.returncode == 1 and r.stderr.strip().splitlines() == [message], r.stderr
    assert list(tmp_path.iterdir()) == []


def test_on_disk_engine_and_workload_apply_to_builds_only(store, tmp_path):
    for run, option in ((msfkit, ["--on-disk"]), (in_process, ["--workload", "batch"])):
        r = run("index", "--add", tmp_path / "ix", store, *option)
        assert r.returncode == 2 and "--on-disk, --engine and --workload apply to a build" in r.stderr
    r = in_process("index", store, "-o", tmp_path / "ix", "--on-disk", "--workload", "batch")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "Error: --workload batch builds an in-memory index; leave out --on-disk"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_an_index_at_a_url_reaches_the_endpoint_given_by_storage_option(store, s3_server, s3_bucket):
    from msfkit.data.remote import open_url

    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"} | {"AWS_MAX_ATTEMPTS": "1"}
    url = f"s3://{s3_bucket}/ix"
    option = ("--storage-option", f"client_kwargs.endpoint_url={s3_server.endpoint}")

    def run(*args):
        return subprocess.run([MSFKIT, *map(str, args)], capture_output=True, text=True, env=env)

    r = run("index", store, "-o", url)  # without the option: not the test server, so one line
    assert r.returncode == 1 and r.stderr.startswith(f"Error: {url}: ") and r.stderr.count("\n") == 1
    assert open_url(url).find() == []
    r = run("index", store, "-o", url, "--type", "flat", *option, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["index"] == url and "index.json" in open_url(url).find()


def test_the_commands_choices_are_the_planners():
    """`msfkit index` spells out --type and --workload (so that `-h` imports no faiss): the same
    choices the planner takes, in its order."""
    choices = {p.name: tuple(p.type.choices) for p in index.params if p.name in ("kind", "workload")}
    assert choices == {"kind": TYPES, "workload": WORKLOADS}
