"""CLI conventions that hold for every command (README.md, "Using it")."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner

from msfkit import __version__
from msfkit.cli.main import COMMANDS, cli


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


def test_version_and_help_come_back_fast_without_torch():
    code = (
        "import sys, time; t = time.perf_counter();"
        "from msfkit.cli.main import cli;"
        "cli(['-h'], standalone_mode=False);"
        "print(time.perf_counter() - t, 'torch' in sys.modules, 'faiss' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    seconds, torch_loaded, faiss_loaded = out.split()[-3:]
    assert torch_loaded == "False" and faiss_loaded == "False"
    assert float(seconds) < 0.5
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "msfkit.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"msfkit, version {__version__}"
    assert time.perf_counter() - t < 5  # whole interpreter start; the import itself is checked above


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
