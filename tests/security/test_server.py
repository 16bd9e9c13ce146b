"""The server's boundary (threat: a web page in the same browser, a careless script): `msfkit serve`
answers only its own Host names and checks every JSON body, a bad one a 400 JSON naming the field.
Real HTTP (httpx) to the installed command serving the photo index."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.msfkit.serve.server import Server, server_env

# every test here runs the installed command, a server or a Ray cluster: out of the quick loop
pytestmark = pytest.mark.slow


LISTEN = "127.0.0.2"  # a loopback address of its own, so that the --host value is a name of its own


@pytest.fixture(scope="module")
def server(photo_index, tmp_path_factory):
    env = server_env(tmp_path_factory.mktemp("serve_cache"), tmp_path_factory.mktemp("serve_hf"))
    extra = ["--allowed-host", "photos.example", "--allowed-host", "*.lan.example"]
    with Server(photo_index[0], env, "--host", LISTEN, *extra) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _port(server) -> int:
    return httpx.URL(server.url).port


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",  # a rebound DNS name, with and without the port
        "attacker.example:{port}",
        "127.0.0.1.attacker.example:{port}",
        "localhost.attacker.example",
        "photos.example.attacker.example",
        "lan.example",  # *.lan.example is the names under it, not itself
        "127.0.0.3:{port}",
        "[::2]:{port}",
    ],
)
@pytest.mark.slow
def test_a_foreign_host_header_is_400_json_and_no_data(client, server, host):
    host = host.format(port=_port(server))
    for path in ("/api/rows/0", "/api/rows/0/image", "/api/search?row=0", "/"):
        r = client.get(path, headers={"Host": host})
        assert r.status_code == 400, (host, path, r.status_code)
        assert r.headers["content-type"] == "application/json"
        error = r.json()["error"]
        assert "Host" in error and "--allowed-host" in error and "\n" not in error
        assert list(r.json()) == ["error"] and r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.slow
def test_a_request_without_a_host_header_is_400_json(server):
    """HTTP/1.0 allows leaving Host out; such a request names none of the server's names either."""
    url = httpx.URL(server.url)
    with socket.create_connection((url.host, url.port), timeout=30) as conn:
        conn.sendall(b"GET /api/rows/0 HTTP/1.0\r\n\r\n")
        answer = b"".join(iter(lambda: conn.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"content-type: application/json" in head.lower(), head
    assert list(json.loads(body)) == ["error"]


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "localhost:{port}",
        "[::1]:{port}",
        LISTEN + ":{port}",  # the --host value
        "photos.example:{port}",  # --allowed-host, in any case, with or without the port
        "PHOTOS.example",
        "a.lan.example:{port}",  # --allowed-host *.lan.example
    ],
)
@pytest.mark.slow
def test_the_loopback_names_the_host_value_and_allowed_hosts_are_answered(client, server, host, photo_index):
    r = client.get("/api/rows/0", headers={"Host": host.format(port=_port(server))})
    assert r.status_code == 200, r.text
    assert r.json()["path"].startswith(str(photo_index[2]))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"row": 1, "offset": "abc"}', 'offset: a whole number is expected, not "abc"'),
        ('{"row": 1, "limit": null}', "limit: a whole number is expected, not null"),
        ('{"row": 1, "limit": 2.5}', "limit: a whole number is expected"),
        ('{"row": 1, "offset": 1e400}', "offset: a whole number is expected"),
        ('{"row": "1"}', 'row: a whole number is expected, not "1"'),
        ('{"row": true}', "row: a whole number is expected, not true"),
        ('{"rows": [1, [2]]}', "rows[1]: a whole number is expected, not a list of 1"),
        ('{"rows": 3}', "rows: a list of whole numbers is expected, not 3"),
        ('{"vector": [1, "x"]}', 'vector[1]: a finite number is expected, not "x"'),
        ('{"vector": [1, NaN]}', "vector[1]: a finite number is expected, not NaN"),
        ('{"vectors": [1, 2]}', "vectors[0]: a list of numbers is expected, not 1"),
        ('{"vectors": [[1], [2, Infinity]]}', "vectors[1][1]: a finite number is expected, not Infinity"),
        ('{"row": 1, "colour": "red"}', '"colour": not a field of a search'),
        ('{"row": 1, "vector": [1]}', "say what to search with, once"),
        ("{}", "say what to search with, once"),
        ("[1, 2]", "a JSON object is expected"),
        ('{"row": 1', "the request body is not JSON"),
        (b'{"row": "\xff"}', "the request body is not JSON"),
        ("[" * 100_000 + "]" * 100_000, "the request body nests too deep"),
        ('{"vector": ' + "[" * 100_000 + "]" * 100_000 + "}", "the request body nests too deep"),
        ('{"vector": ' + "[" * 500 + "]" * 500 + "}", "vector[0]: a finite number is expected"),
    ],
)
@pytest.mark.slow
def test_a_bad_json_body_is_400_with_one_line_naming_the_field(client, body, field):
    r = client.post("/api/search", content=body, headers={"Content-Type": "application/json"})
    assert (r.status_code, r.headers["content-type"]) == (400, "application/json"), r.text
    error = r.json()["error"]
    assert error.startswith(field) and "\n" not in error and len(error) < 300, error


@pytest.mark.slow
def test_bad_bodies_leave_no_traceback_in_the_log_and_good_ones_still_search(client, server):
    for body in ('{"row": 1, "offset": "abc"}', '{"row": 1, "limit": null}', "[" * 100_000):
        assert client.post(
            "/api/search", content=body, headers={"Content-Type": "application/json"}
        ).is_client_error
    good = client.post("/api/search", json={"row": 1, "offset": 2, "limit": 3}).json()
    assert good["offset"] == 2 and len(good["queries"][0]["results"]) == 3
    assert client.post("/api/search", json={"rows": [1, 2], "limit": 1}).status_code == 200
    output = server.output()
    assert "Traceback" not in output and "internal error" not in output and " 500" not in output, output
