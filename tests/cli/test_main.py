"""CLI conventions that hold for every command (README.md, "Using it")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from msfkit import __version__
from msfkit.cli.main import COMMANDS, cli

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


def all_command_paths() -> list[list[str]]:
    """Every command and sub-command, as the argument lists that reach it."""
    paths = []
    ctx = click.Context(cli)
    for name in sorted(COMMANDS):
        cmd = cli.get_command(ctx, name)
        paths.append([name])
        if isinstance(cmd, click.Group):
            paths += [[name, sub] for sub in cmd.list_commands(ctx)]
    return paths


@pytest.mark.parametrize("path", all_command_paths(), ids=" ".join)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_command_answers_help(path, flag):
    r = CliRunner().invoke(cli, [*path, flag])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Usage: ") and f"cli {' '.join(path)}" in r.output


HEAVY = {"torch", "torchvision", "faiss", "pandas"}  # loaded by the commands that need them, never for -h


def imports_of(*args: str) -> tuple[set[str], str]:
    """(the top-level modules the installed `msfkit` console script imports to answer `args`, its
    stdout), read from Python's own import record (`PYTHONPROFILEIMPORTTIME`)."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    r = subprocess.run([MSFKIT, *args], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    record = [line for line in r.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in record}, r.stdout


ANSWERS = {
    "-h": "Usage: msfkit [OPTIONS]",
    "search --help": "Usage: msfkit search [OPTIONS]",
    "--version": f"msfkit, version {__version__}\n",
}


@pytest.mark.parametrize("args", sorted(ANSWERS))
def test_help_and_version_import_neither_torch_nor_faiss(args):
    """What keeps the start-up quick, asserted as behaviour: a time bound would fail on a loaded machine."""
    imports_of(*args.split())  # the first `-h` renders the page with click and keeps it
    imported, out = imports_of(*args.split())
    assert out.startswith(ANSWERS[args])
    assert "msfkit" in imported  # the record is read: an empty one would pass the next lines
    assert not imported & HEAVY, sorted(imported & HEAVY)
    # -V and a help page shown before are answered by the entry point alone; a command's help is click's
    assert ("click" in imported) == (args == "search --help")


def click_page(columns: int) -> str:
    """`msfkit -h` as the click group itself prints it at this terminal width, past the entry point."""
    code = "from msfkit.cli.main import cli; cli.main(['-h'], prog_name='msfkit')"
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout


@pytest.mark.parametrize("columns", [60, 200])
def test_the_kept_help_page_is_clicks_page_for_the_terminals_width(columns, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(columns))
    first = subprocess.run([MSFKIT, "-h"], capture_output=True, text=True, check=True).stdout
    kept, bare = (
        subprocess.run([MSFKIT, *a], capture_output=True, text=True, check=True) for a in (["--help"], [])
    )
    assert first == kept.stdout == bare.stdout == click_page(columns)
    assert max(map(len, first.splitlines())) <= min(columns, 100) - 2
    pages = list((Path(os.environ["MSFKIT_CACHE"]) / "help").iterdir())
    assert len(pages) == 1 and pages[0].read_text().partition("\n")[2] == first


def test_a_kept_page_with_another_key_is_rendered_again_and_replaced(monkeypatch):
    monkeypatch.setenv("COLUMNS", "90")
    first = subprocess.run([MSFKIT, "-h"], capture_output=True, text=True, check=True).stdout
    (page,) = (Path(os.environ["MSFKIT_CACHE"]) / "help").iterdir()
    key, _, text = page.read_text().partition("\n")
    page.write_text(f"{key}|an older click\nUsage: a stale page\n")  # as if click or a module had changed
    again = subprocess.run([MSFKIT, "-h"], capture_output=True, text=True, check=True).stdout
    assert again == first and page.read_text() == f"{key}\n{text}"


def test_help_is_printed_where_the_cache_cannot_be_written(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("MSFKIT_CACHE", str(tmp_path / "a-file"))
    r = subprocess.run([MSFKIT, "-h"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == click_page(80)


def test_models_info_json_parses_and_describes_the_model(tiny_model_dir):
    r = CliRunner().invoke(cli, ["models", "info", str(tiny_model_dir), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["arch"] == "resnet18" and info["embedding_dim"] == 512 and info["stem"] == "cifar"
    assert len(info["fingerprint"]) == 16 and info["parameters"] > 10_000_000


def test_models_info_reads_the_model_from_the_environment(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("MSFKIT_MODEL", str(tiny_model_dir))
    r = CliRunner().invoke(cli, ["models", "info"])
    assert r.exit_code == 0 and "resnet18 (cifar stem)" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["models", "info", "not-a-model"],
            "Error: model 'not-a-model': no such folder; expected a model folder",
        ),
        (["export", "/no/such/ckpt.pth", "out"], "Error: /no/such/ckpt.pth: no such checkpoint or run"),
        (["push", "/no/such/dir", "org/name"], "Error: Invalid value for 'MODEL_DIR'"),
        (["frobnicate"], "Error: No such command 'frobnicate'"),
    ],
)
@pytest.mark.slow
def test_user_errors_are_one_line_and_non_zero_through_the_real_console_script(args, message, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "msfkit.cli", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("Error: ")


def test_push_refuses_a_folder_that_is_not_a_model_before_any_network(tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["push", str(tmp_path / "empty"), "org/name"])
    assert r.exit_code == 1 and "no such folder" not in r.output and "not a model folder" in r.output
