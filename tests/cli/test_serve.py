"""`msfkit serve` as a command: help without the web stack, one-line errors, the printed URL."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.msfkit.index_stores import photo_index_folders
from tests.msfkit.serve.server import msfkit_command, server_env


def test_help_loads_neither_torch_nor_the_web_framework():
    code = (
        "import sys; from msfkit.cli.main import cli;"
        "cli(['serve', '-h'], standalone_mode=False);"
        "print([m for m in ('torch', 'faiss', 'starlette', 'uvicorn') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--port" in out and "127.0.0.1" in out
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_a_missing_index_is_one_error_line(tmp_path):
    r = subprocess.run([*msfkit_command(), "serve", str(tmp_path / "nope")], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == f"Error: {tmp_path / 'nope'}: no such index folder"


@pytest.mark.slow
def test_a_port_in_use_is_one_error_line(photo_paths, tmp_path_factory, tmp_path):
    index = photo_index_folders(photo_paths, tmp_path_factory)[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = subprocess.run(
            [*msfkit_command(), "serve", str(index), "--port", str(port)],
            capture_output=True, text=True, env=server_env(tmp_path / "cache", tmp_path / "hf"), timeout=120,
        )  # fmt: skip
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")


@pytest.mark.parametrize("name", ["*", "bad host"])
@pytest.mark.slow
def test_a_malformed_allowed_host_is_one_error_line(photo_index, tmp_path, name):
    argv = [*msfkit_command(), "serve", str(photo_index[0]), "--port", "0", "--allowed-host", name]
    env = server_env(tmp_path / "cache", tmp_path / "hf")
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    expected = f"Error: --allowed-host {name!r}: a host name, an IP address or *.domain (every name under it)"
    assert (r.returncode, r.stderr.strip(), r.stdout) == (1, expected, "")


@pytest.mark.slow
def test_json_prints_the_url_as_one_object(photo_paths, tmp_path_factory, tmp_path):
    import json

    import httpx

    from tests.msfkit.serve.server import Server

    index = photo_index_folders(photo_paths, tmp_path_factory)[0]
    with Server(index, server_env(tmp_path / "cache", tmp_path / "hf"), "--json") as server:
        ready = json.loads(server.lines[-1])
        assert ready == {"url": ready["url"], "rows": 21, "model": ready["model"], "model_loaded": True}
        assert ready["url"].startswith("http://127.0.0.1:")
        assert httpx.get(ready["url"] + "api/health").json()["rows"] == 21


@pytest.mark.slow
def test_an_index_at_a_url_over_photos_in_a_bucket_sends_only_its_rows(
    s3_server, s3_bucket, photo_paths, tiny_model_dir, tmp_path
):
    import httpx

    import msfkit
    from msfkit.data.remote import open_url
    from msfkit.index import build_index
    from tests.msfkit.serve.server import Server

    photos = f"s3://{s3_bucket}/photos"
    for p in photo_paths[:3]:
        open_url(f"{photos}/{p.name}").write_bytes(p.read_bytes())
    open_url(f"s3://{s3_bucket}/outside.jpg").write_bytes(photo_paths[3].read_bytes())
    store = msfkit.embed(photos, tiny_model_dir, tmp_path / "store", workers=0)
    assert store.parts[0].manifest.source_root == photos
    build_index(tmp_path / "store", f"s3://{s3_bucket}/index", kind="flat")
    env = server_env(tmp_path / "cache", tmp_path / "hf")
    del env["AWS_ENDPOINT_URL"]  # the server finds the test's S3 API only through --storage-option
    option = f"client_kwargs.endpoint_url={s3_server.endpoint}"
    with Server(f"s3://{s3_bucket}/index", env, "--storage-option", option) as server:
        for row, name in enumerate(store.meta["path"]):
            sent = httpx.get(f"{server.url}api/rows/{row}/image")
            assert sent.status_code == 200 and sent.content == open_url(f"{photos}/{name}").read_bytes()
        assert httpx.get(f"{server.url}api/rows/0/thumb?size=64").headers["content-type"] == "image/jpeg"
        assert httpx.get(f"{server.url}api/rows/3/image").status_code == 404  # no such row: nothing else
        open_url(f"{photos}/{store.meta['path'][1]}").write_bytes(photo_paths[4].read_bytes())
        refused = httpx.get(f"{server.url}api/rows/1/image")
        assert refused.status_code == 404 and "changed since it was embedded" in refused.text
