"""A full disk is one line naming where, and nothing half-written stays: a real 1 MB tmpfs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.msfkit.index_stores import clustered_vectors, write_vector_store

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


@pytest.fixture
def tiny_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)]
    mounted = subprocess.run(mount, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.slow
def test_an_index_that_does_not_fit_is_one_line_and_leaves_nothing(tmp_path, tiny_disk):
    store = write_vector_store(tmp_path / "store", clustered_vectors(20_000, 32, 8, seed=0))  # 2.5 MB
    r = subprocess.run([MSFKIT, "index", store, "-o", tiny_disk / "ix", "--type", "flat"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    where = tiny_disk / "ix"
    last = r.stderr.strip().splitlines()[-1]  # after the progress bar
    assert last == f"Error: disk full: cannot write the index {where}; free space, run again"
    assert list(tiny_disk.iterdir()) == []


def test_a_store_shard_that_does_not_fit_is_one_line_and_leaves_no_temporary(tiny_disk):
    from msfkit.models.errors import MsfkitError

    with pytest.raises(MsfkitError, match=r"disk full: cannot write .*\.npy; free space there and run again"):
        write_vector_store(tiny_disk / "store", clustered_vectors(20_000, 32, 8, seed=0))
    assert not [p for p in tiny_disk.rglob("*") if ".tmp" in p.name]


@pytest.mark.slow
def test_a_model_folder_that_does_not_fit_is_one_line_and_leaves_no_temporary(tiny_disk):
    """safetensors reports a short write as its own error, not an OSError: still "disk full"."""
    out = tiny_disk / "baseline"
    r = subprocess.run([MSFKIT, "models", "init", "resnet18", str(out)], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("Error: disk full: cannot write ") and str(tiny_disk) in r.stderr
    assert not [p for p in tiny_disk.rglob("*") if ".tmp" in p.name]
