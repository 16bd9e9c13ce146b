"""One real `msfkit serve` per test session, on the photo index (12 photos + 9 planted copies); and a
planted index of chosen vectors for the views' own tests."""

from __future__ import annotations

import pytest

from tests.msfkit.serve.planted import planted_index_folder
from tests.msfkit.serve.server import Server, server_env


@pytest.fixture(scope="session")
def server_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("serve_cache")


@pytest.fixture(scope="session")
def server(photo_index, server_cache, tmp_path_factory):
    """The running server (its `url` ends with '/'); its cache folder is `server_cache`. One for the
    session: every test module of the page and the API asks the same server (a start costs seconds)."""
    env = server_env(server_cache, tmp_path_factory.mktemp("serve_hf"))
    with Server(photo_index[0], env, "--max-upload", "4MB") as running:
        yield running


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """The planted index (tests.msfkit.serve.planted): TRAIN and TEST stores of two labelled clusters."""
    return planted_index_folder(tmp_path_factory.mktemp("planted"))
