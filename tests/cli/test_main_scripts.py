"""What scripts rely on, through the installed `msfkit` console script in a subprocess (a test's
further cases through the click group in this process): documented exit codes, strict JSON, and a
reader that closes the pipe early."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import in_process

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


def msfkit(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([MSFKIT, *map(str, args)], capture_output=True, text=True, **kw)


def strict_json(line: str):
    """json.loads that refuses NaN and Infinity, as JSON.parse in a browser or Node does."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(line, parse_constant=refuse)


@pytest.mark.slow
def test_embed_exits_1_when_nothing_embeds_and_with_strict_failures(tmp_path, photos_dir, tiny_model_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    r = msfkit("embed", bad, "-m", tiny_model_dir, "-o", tmp_path / "s1", "-q")
    assert r.returncode == 1, r.stderr
    assert r.stdout.startswith("embedded 0, failed 1")

    shutil.copy(bad / "empty.jpg", photos_dir / "empty.jpg")
    ok = in_process("embed", photos_dir, "-m", tiny_model_dir, "-o", tmp_path / "s2", "-q")
    assert ok.returncode == 0 and ok.stdout.startswith("embedded 8, failed 1")
    strict = in_process("embed", photos_dir, "-m", tiny_model_dir, "-o", tmp_path / "s3", "-q", "--strict")
    assert strict.returncode == 1


@pytest.mark.slow
def test_json_output_is_strict_json_with_null_for_a_missing_label(photo_index):
    index, _, photos, _ = photo_index  # flat photos: no class folder, so no label
    r = msfkit("search", index, photos / "bear.jpg", "-k", "3", "--json")
    assert r.returncode == 0, r.stderr
    records = [strict_json(line) for line in r.stdout.splitlines()]
    assert len(records) == 3 and all(rec["label"] is None for rec in records)
    d = msfkit("dedup", index, "--threshold", "0.99", "--json")
    assert d.returncode == 0 and all(strict_json(line)["label"] is None for line in d.stdout.splitlines())


@pytest.mark.slow
def test_a_reader_that_stops_early_is_a_quiet_successful_end(photo_index):
    index, _, photos, _ = photo_index
    proc = subprocess.Popen(
        [MSFKIT, "search", str(index), str(photos), "-k", "5", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    proc.stdout.close()  # no reader at all: every write fails with EPIPE
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, stderr
    assert stderr == ""
