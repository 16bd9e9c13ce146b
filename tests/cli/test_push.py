"""`msfkit push MODEL_DIR REPO_ID` against a Hub-compatible server on 127.0.0.1 (the `local_hub`
fixture, tests/hub_server.py), through huggingface_hub's real upload API (create_repo, preupload,
LFS batch + PUT, commit)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import msfkit
from msfkit.cli.main import cli

MODEL_FILES = ["README.md", "config.json", "model.safetensors"]


def embed(encoder) -> np.ndarray:
    """The encoder's embeddings of one fixed batch."""
    return encoder.embed(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


@pytest.mark.slow
def test_push_uploads_the_folder_and_load_reads_it_back(local_hub, tiny_model_dir):
    r = CliRunner().invoke(cli, ["push", str(tiny_model_dir), "org/pushed"])

    assert r.exit_code == 0, r.output
    sha = local_hub.head("org/pushed")
    assert r.stdout.strip() == f"{local_hub.endpoint}/org/pushed/commit/{sha}"
    assert local_hub.files("org/pushed") == [".gitattributes", *MODEL_FILES]
    for name in MODEL_FILES:
        assert local_hub.read("org/pushed", name) == (tiny_model_dir / name).read_bytes(), name
    encoder = msfkit.load("org/pushed")
    assert encoder.revision == sha
    np.testing.assert_array_equal(embed(encoder), embed(msfkit.load(str(tiny_model_dir))))

    again = CliRunner().invoke(cli, ["push", str(tiny_model_dir), "org/pushed"])
    assert again.exit_code == 0, again.output
    assert local_hub.head("org/pushed") == sha  # the repo exists and nothing changed: no new commit


def _drop_a_tensor(folder):
    state = load_file(folder / "model.safetensors")
    del state["layer4.1.bn2.running_mean"]
    save_file(state, folder / "model.safetensors")


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "not a model folder (no model.safetensors)"),
        (_drop_a_tensor, "weights do not match the config: missing layer4.1.bn2.running_mean"),
        (lambda d: (d / "config.json").write_text("{not json"), "unreadable config"),
    ],
    ids=["no weights file", "a missing tensor", "unreadable config"],
)
def test_push_of_a_broken_model_folder_is_one_line_and_uploads_nothing(
    local_hub, tiny_model_dir, tmp_path, breakage, message
):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, folder)
    breakage(folder)

    r = CliRunner().invoke(cli, ["push", str(folder), "org/broken"])

    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], r.stderr
    assert local_hub.requests == [] and local_hub.storage_requests == []
    assert "org/broken" not in local_hub.repos


def test_push_of_a_card_whose_front_matter_the_hub_rejects_is_one_line(local_hub, tiny_model_dir, tmp_path):
    folder = tmp_path / "bad-card"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "README.md").write_text("---\ntags: [unclosed\n---\n# card\n")

    r = CliRunner().invoke(cli, ["push", str(folder), "org/bad-card"])

    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: push to org/bad-card failed"), r.stderr
    assert local_hub.files("org/bad-card") in ([], [".gitattributes"])


@pytest.mark.slow
def test_push_with_no_network_is_one_line_and_exit_1(tmp_path, tiny_model_dir, monkeypatch):
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:  # a port on 127.0.0.1 that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    msfkit = str(Path(sys.executable).with_name("msfkit"))
    args = [msfkit, "push", str(tiny_model_dir), "org/name"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"Error: push to org/name: cannot reach http://127.0.0.1:{port}")
    assert len(r.stderr.strip().splitlines()) == 1
