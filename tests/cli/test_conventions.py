"""One meaning per option across every command (README "Using it", cli/common.py): walked, not listed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from msfkit.cli.main import DEPRECATED, cli
from tests.commands import in_process

MSFKIT = str(Path(sys.executable).with_name("msfkit"))
WRITERS = {"embed", "index", "dedup", "search"}  # commands that write a file or folder of their own choosing
ROW_COMMANDS = {"search", "dedup"}  # --json: JSON Lines, one object per row; every other command: one object


def leaf_commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    out = {}

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            out[" ".join(path)] = cmd

    walk(cli, [])
    return out


COMMANDS = leaf_commands()


def msfkit(*args) -> subprocess.CompletedProcess:
    """The installed console script, run with `args`."""
    return subprocess.run([MSFKIT, *map(str, args)], capture_output=True, text=True)


def _options(cmd: click.Command) -> dict[str, click.Option]:
    return {name: p for p in cmd.params if isinstance(p, click.Option) for name in p.opts + p.secondary_opts}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_follows_the_conventions(name):
    options = _options(COMMANDS[name])
    assert not set(options) & set(DEPRECATED), f"{name} still declares an old spelling"
    assert "--json" in options and options["--json"].is_flag, f"{name} has no --json"
    if name in WRITERS:
        assert {"-o", "--output"} <= set(options), f"{name} writes but has no -o/--output"
    if "-o" in options:
        assert "--output" in options["-o"].opts
    if "--force" in options:
        assert options["--force"].is_flag
    if "-k" in options:  # the number of neighbours, everywhere: both halves must hold
        k = options["-k"]
        assert "neighbours" in (k.help or "").lower(), f"{name}: -k does not say it counts neighbours"
        if k.multiple:  # eval takes several: -k 1,20 or -k 1 -k 20
            assert "-k 1,20" in k.help, f"{name}: -k takes several but does not show how"
        else:
            assert isinstance(k.type, click.IntRange) and (k.type.min, k.type.min_open) == (1, False), name
    if "-m" in options:
        assert "--model" in options["-m"].opts and options["-m"].envvar == "MSFKIT_MODEL"


@pytest.mark.slow
def test_old_spellings_still_work_for_a_release_with_one_line(tmp_path, photos_dir, tiny_model_dir):
    r = msfkit("embed", photos_dir, "-m", tiny_model_dir, "--out", tmp_path / "s", "-q", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "msfkit: --out is deprecated and goes in the next release; use -o/--output"
    assert json.loads(r.stdout)["embedded"] == 8
    r = in_process("embed", photos_dir, "-m", tiny_model_dir, "-o", tmp_path / "s", "--overwrite", "-q")
    assert r.returncode == 0 and "--overwrite is deprecated" in r.stderr and "use --force" in r.stderr
    r = in_process("index", tmp_path / "s", f"--out={tmp_path / 'ix'}", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["count"] == 8


@pytest.mark.parametrize("name", sorted(ROW_COMMANDS))
def test_row_commands_document_json_lines(name):
    assert "JSON Lines" in (_options(COMMANDS[name])["--json"].help or "")
