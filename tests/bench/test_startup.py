"""bench/startup.py names the heavy modules a command imported, however the command ends."""

from __future__ import annotations

import sys

import pytest

from bench.startup import MSFKIT, imported

pytestmark = pytest.mark.slow  # starts processes


def test_the_modules_a_process_imported_are_named_even_when_it_exits():
    assert imported([*MSFKIT, "--version"]) == []  # msfkit's own code path, ended by click's exit
    pretend = "import sys; sys.modules['torchvision'] = sys; raise SystemExit(0)"
    assert imported([sys.executable, "-c", pretend]) == ["torchvision"]
