"""`msfkit embed` as real processes: killed with SIGKILL and resumed; two torchrun ranks (gloo, CPU)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from msfkit.cli.main import cli
from msfkit.store import open_store
from msfkit.store.format import read_manifest
from msfkit.store.shards import committed_shards, shard_info, shard_paths
from tests.bad_images import write_bad_files
from tests.runs import embed


def _collection(root: Path, photo_paths: list[Path], copies: int) -> Path:
    """`copies` class folders of the real photos, plus the bad files at the top."""
    for c in range(copies):
        (root / f"class{c}").mkdir(parents=True)
        for p in photo_paths:
            shutil.copy(p, root / f"class{c}" / p.name)
    write_bad_files(root, photo_paths[0])
    return root


def _assert_same_store(got: Path, expected: Path) -> None:
    a, b = open_store(got), open_store(expected)
    assert a.complete and b.complete
    assert a.meta["path"].is_unique and a.meta.equals(b.meta)
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)
    assert sorted(a.errors["path"]) == sorted(b.errors["path"])


@pytest.mark.slow
def test_a_killed_run_resumes_with_every_image_exactly_once(tmp_path, photo_paths, tiny_model_dir):
    src = _collection(tmp_path / "src", photo_paths, copies=1)  # 28 photos + 6 bad files: 9 shards of 4
    out = tmp_path / "store"
    args = ["embed", str(src), "-m", str(tiny_model_dir), "-o", str(out), "--shard-rows", "4"]
    args += ["--batch-size", "4", "--workers", "1", "--no-draft", "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "msfkit.cli", *args], start_new_session=True)
    deadline = time.monotonic() + 120
    while len(committed_shards(out)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the main process and its decoding worker
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and 2 <= len(committed_shards(out)) < 9
    done = sum(len(shard_paths(out, k)) for k in committed_shards(out))
    done_failed = sum(shard_info(out, k).failed for k in committed_shards(out))

    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    expected = f"embedded {28 - (done - done_failed)}, failed {6 - done_failed}, skipped {done} "
    assert last.startswith(expected), last
    reference = tmp_path / "reference"
    embed([src], str(tiny_model_dir), reference, shard_rows=4, draft=False, workers=0, progress=False)
    _assert_same_store(out, reference)
    assert len(open_store(out)) == len(photo_paths)


@pytest.mark.slow
def test_two_torchrun_ranks_write_the_same_store_as_one_process(tmp_path, photo_paths, tiny_model_dir):
    src = _collection(tmp_path / "src", photo_paths[:8], copies=2)  # 16 photos + 6 bad files
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "msfkit.cli", "embed", str(src)]
    cmd += ["-m", str(tiny_model_dir), "-o", str(tmp_path / "ranks"), "--shard-rows", "3"]
    cmd += ["--workers", "0", "-q"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("embedded 16, failed 6, skipped 0 ")  # both ranks, once
    embed([src], str(tiny_model_dir), tmp_path / "single", shard_rows=3, workers=0, progress=False)
    _assert_same_store(tmp_path / "ranks", tmp_path / "single")
    assert len(read_manifest(tmp_path / "ranks").shards) == 8


@pytest.mark.slow
def test_orphaned_workers_of_a_killed_run_do_not_keep_the_store_locked(tmp_path, photo_paths, tiny_model_dir):
    src = _collection(tmp_path / "src", photo_paths, copies=2)
    out = tmp_path / "store"
    # 8 shards of 8, a batch each: fewer than COMPILE_MIN_BATCHES, so neither run builds the model's
    # AOTInductor package (25 s of a 30 s test, and not what it is about)
    args = ["embed", str(src), "-m", str(tiny_model_dir), "-o", str(out), "--shard-rows", "8"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "msfkit.cli", *args, "--batch-size", "8", "--workers", "2", "-q"]
    )
    deadline = time.monotonic() + 120
    while not committed_shards(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()  # the main process only: its decoding workers live on for a few seconds
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    result = CliRunner().invoke(cli, [*args, "--workers", "0", "-q"])  # at once, workers still alive
    assert result.exit_code == 0, result.output
    assert len(open_store(out)) == 2 * len(photo_paths)
