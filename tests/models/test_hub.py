"""`msfkit.load("org/name[@revision]")` over real HTTP, through huggingface_hub's own client.

The `local_hub` fixture serves repos from a Hub-compatible server on 127.0.0.1 (tests/hub_server.py)
with HF_ENDPOINT pointed at it; the download cache lives under the test's own HF_HOME.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import msfkit
from msfkit.cli.main import cli
from msfkit.models import Encoder, EncoderConfig
from msfkit.models.errors import MsfkitError


def folder_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def embed(encoder: Encoder) -> np.ndarray:
    """The encoder's embeddings of one fixed batch."""
    return encoder.embed(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory) -> Path:
    """A model folder like `tiny_model_dir` with other weights."""
    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("other_model")
    Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32)).save_pretrained(d)
    return d


@pytest.mark.slow
def test_load_from_the_hub_gives_the_local_folders_embeddings(local_hub, tiny_model_dir):
    local_hub.create_repo("org/name")
    sha = local_hub.commit("org/name", folder_files(tiny_model_dir))

    encoder = msfkit.load("org/name")

    assert encoder.name == "org/name" and encoder.revision == sha
    np.testing.assert_array_equal(embed(encoder), embed(msfkit.load(str(tiny_model_dir))))
    snapshot = Path(os.environ["HF_HOME"]) / "hub" / "models--org--name" / "snapshots" / sha
    assert sorted(p.name for p in snapshot.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    weights = hashlib.sha256((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert local_hub.storage_requests == [("GET", f"/{weights}")]  # the weights came the LFS way


@pytest.mark.slow
def test_a_second_load_comes_from_the_cache_offline_or_with_the_hub_gone(local_hub, hf_env, tiny_model_dir):
    local_hub.create_repo("org/name")
    sha = local_hub.commit("org/name", folder_files(tiny_model_dir))
    first = msfkit.load("org/name")
    seen = len(local_hub.requests) + len(local_hub.storage_requests)

    hf_env(HF_HUB_OFFLINE="1")
    again = msfkit.load("org/name")
    assert again.revision == sha and again.fingerprint == first.fingerprint
    np.testing.assert_array_equal(embed(again), embed(first))
    assert len(local_hub.requests) + len(local_hub.storage_requests) == seen  # not one request
    with pytest.raises(MsfkitError, match=r"^model org/other: not in the local cache[^\n]*$"):
        msfkit.load("org/other")

    local_hub.stop()  # connections are refused from now on
    hf_env(HF_HUB_OFFLINE="0")
    assert msfkit.load("org/name").fingerprint == first.fingerprint
    assert msfkit.load(f"org/name@{sha}").revision == sha


@pytest.mark.slow
def test_pinned_revisions_get_that_revisions_weights(local_hub, tiny_model_dir, other_model_dir):
    local_hub.create_repo("org/name")
    first = local_hub.commit("org/name", folder_files(tiny_model_dir), message="v1")
    local_hub.create_branch("org/name", "release/v1", first)
    second = local_hub.commit("org/name", folder_files(other_model_dir), message="v2")
    want = {first: embed(msfkit.load(str(tiny_model_dir))), second: embed(msfkit.load(str(other_model_dir)))}
    assert not np.allclose(want[first], want[second])

    for name, sha in [
        ("org/name", second),
        (f"org/name@{first}", first),
        ("org/name@release/v1", first),  # a branch name with a '/', quoted in the URL
        ("org/name@main", second),
        (f"org/name@{second}", second),
    ]:
        encoder = msfkit.load(name)
        assert encoder.revision == sha, name
        np.testing.assert_array_equal(embed(encoder), want[sha], err_msg=name)


@pytest.mark.parametrize(
    "name, message",
    [
        ("org/missing", "model org/missing: no such repo on the Hub"),
        ("org/name@nope", "model org/name@nope: no such revision on the Hub"),
        (f"org/name@{'0' * 40}", f"model org/name@{'0' * 40}: no such revision on the Hub"),
        ("org/name", "model org/name: the repo has no model.safetensors"),
    ],
    ids=["missing repo", "missing branch", "missing commit", "missing weights file"],
)
def test_hub_misses_are_one_clear_line(local_hub, tiny_model_dir, name, message):
    local_hub.create_repo("org/name")
    local_hub.commit("org/name", {f: (tiny_model_dir / f).read_bytes() for f in ["config.json", "README.md"]})

    with pytest.raises(MsfkitError) as error:
        msfkit.load(name)

    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.slow
def test_cli_models_info_of_a_missing_repo_is_one_error_line(local_hub):
    r = subprocess.run(
        [sys.executable, "-m", "msfkit.cli", "models", "info", "org/missing"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("Error: model org/missing: no such repo on the Hub"), r.stderr
    assert ("GET", "/api/models/org/missing/revision/main") in local_hub.requests  # HF_ENDPOINT was used


def test_cli_models_info_json_names_the_hub_revision(local_hub, tiny_model_dir):
    local_hub.create_repo("org/name")
    sha = local_hub.commit("org/name", folder_files(tiny_model_dir))

    r = CliRunner().invoke(cli, ["models", "info", "org/name", "--json"])

    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["model"] == "org/name" and info["revision"] == sha
    assert info["fingerprint"] == msfkit.load(str(tiny_model_dir)).fingerprint


def test_local_hub_answers_misses_with_the_hubs_error_codes(local_hub):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    local_hub.create_repo("org/name")
    local_hub.commit("org/name", {"config.json": b"{}"})

    assert Path(hf_hub_download("org/name", "config.json")).read_bytes() == b"{}"
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/name", "model.safetensors")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("org/name", "config.json", revision="nope")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/missing", "config.json")


def test_local_hub_serves_only_the_repos_own_files(local_hub):
    local_hub.create_repo("org/name")
    local_hub.commit("org/name", {"config.json": b"{}"})
    blob = hashlib.sha256(b"{}").hexdigest()

    def status(base: str, path: str) -> int:
        conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
        conn.request("GET", path)  # sent as is: no client-side normalisation of '..'
        code = conn.getresponse().status
        conn.close()
        return code

    assert status(local_hub.endpoint, "/org/name/resolve/main/config.json") == 200
    assert status(local_hub.storage_url, f"/{blob}") == 200
    for base, path in [
        (local_hub.endpoint, "/org/name/resolve/main/../../../../etc/passwd"),
        (local_hub.endpoint, "/org/name/resolve/main/..%2F..%2F..%2Fobjects%2F" + blob),
        (local_hub.endpoint, "/org/..%2F..%2F/resolve/main/config.json"),
        (local_hub.storage_url, "/..%2F..%2Fetc%2Fpasswd"),
        (local_hub.storage_url, f"/{blob}/../../etc/passwd"),
    ]:
        assert status(base, path) == 404, path
