"""One real `msfkit serve` per test module, on the photo index (12 photos + 9 planted copies)."""

from __future__ import annotations

import pytest

from tests.msfkit.serve.server import Server, server_env


@pytest.fixture(scope="module")
def server_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("serve_cache")


@pytest.fixture(scope="module")
def server(photo_index, server_cache, tmp_path_factory):
    """The running server (its `url` ends with '/'); its cache folder is `server_cache`."""
    env = server_env(server_cache, tmp_path_factory.mktemp("serve_hf"))
    with Server(photo_index[0], env, "--max-upload", "4MB") as running:
        yield running
