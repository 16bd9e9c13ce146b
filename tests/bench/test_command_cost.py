"""bench/command_cost.py: a command's peak memory is its own, not the bench's nor another command's."""

from __future__ import annotations

import sys

import pytest

from bench.command_cost import measure

pytestmark = pytest.mark.slow  # starts processes

ALLOCATE = "import sys; block = b'x' * (int(sys.argv[1]) * 2**20)"  # filled: every page resident


def test_each_command_reports_its_own_peak_and_exit_code(tmp_path):
    held = b"x" * (300 * 2**20)  # the bench itself holds more than either command
    big = measure([sys.executable, "-c", ALLOCATE, "200"], tmp_path / "big.log")
    small = measure([sys.executable, "-c", ALLOCATE, "1"], tmp_path / "small.log")
    assert 200 <= big.peak_mib < 290 and big.exit_code == 0
    assert small.peak_mib < 100  # neither the bench's 300 MiB nor the command before it
    assert 0 < small.seconds < 60
    failed = measure([sys.executable, "-c", "import sys; print('no'); sys.exit(3)"], tmp_path / "failed.log")
    assert failed.exit_code == 3 and (tmp_path / "failed.log").read_text() == "no\n"
    del held
