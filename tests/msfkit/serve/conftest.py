"""One real `msfkit serve` per test session, on the photo index (12 photos + 9 planted copies); and a
planted index of chosen vectors for the views' own tests."""

from __future__ import annotations

import httpx
import pytest

import msfkit
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


@pytest.fixture(scope="module")
def client(server):
    """An HTTP client of the session's server (tests/msfkit/serve/server.py)."""
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def index(photo_index):
    """The photo index the session's server serves, opened in this process."""
    return msfkit.open_index(photo_index[0])
