"""The path boundary (threat: a data set from the internet, a store or index edited by hand): a row's
file is sent only while it resolves, symlinks too, under its store's source root and is still the
file that was embedded; a row path that climbs out refuses the store. Through the installed `msfkit`
command (a test's further cases, and the stores and indexes a test only reads, through its click group
or the Python API in this process) and real HTTP to the served index."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.commands import in_process
from tests.msfkit.serve.server import Server, msfkit_command, server_env
from tests.runs import embed

# every test here runs the installed command, a server or a Ray cluster: out of the quick loop
pytestmark = pytest.mark.slow


def _msfkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*msfkit_command(), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def collection(tmp_path_factory, photo_paths, tiny_model_dir):
    """base/data (three photos) embedded into base/st; base/secret.jpg, another photo, outside it."""
    base = tmp_path_factory.mktemp("paths")
    (base / "data").mkdir()
    for i, photo in enumerate(photo_paths[:3]):
        shutil.copy(photo, base / "data" / f"p{i}.jpg")
    shutil.copy(photo_paths[7], base / "secret.jpg")
    assert embed([base / "data"], str(tiny_model_dir), base / "st", workers=0).embedded == 3
    return base


def _index(store: Path, out: Path, installed: bool = False) -> subprocess.CompletedProcess:
    """`msfkit index STORE -o OUT` by the installed command, or by the click group in this process."""
    if installed:
        return _msfkit("index", str(store), "-o", str(out))
    return in_process("index", store, "-o", out)


def _served(index: Path, tmp_path_factory):
    return Server(index, server_env(tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("hf")))


def _refused(r: httpx.Response, says: str) -> None:
    assert r.status_code == 404, (r.status_code, r.content[:80])
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert says in error and "\n" not in error, error


def test_a_symlink_or_a_changed_file_swapped_in_after_indexing_is_not_sent(collection, tmp_path_factory):
    """The rows are checked when a file is sent, not once at start: the swaps happen while it serves."""
    data = collection / "data"
    originals = {i: (data / f"p{i}.jpg").read_bytes() for i in range(3)}
    stats = {i: (data / f"p{i}.jpg").stat() for i in range(3)}
    index = collection / "ix"
    assert _index(collection / "st", index).returncode == 0
    with _served(index, tmp_path_factory) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert [client.get(f"/api/rows/{i}/image").content for i in range(3)] == list(originals.values())
        (data / "p1.jpg").unlink()
        (data / "p1.jpg").symlink_to(collection / "secret.jpg")  # an image outside the source root
        (data / "p2.jpg").unlink()
        (data / "p2.jpg").symlink_to("/etc/passwd")
        for route in ("image", "thumb?size=64"):
            _refused(client.get(f"/api/rows/1/{route}"), "outside the source root")
            _refused(client.get(f"/api/rows/2/{route}"), "outside the source root")
        (data / "p2.jpg").unlink()
        (data / "p2.jpg").write_bytes(originals[0])  # another file, inside the root
        _refused(client.get("/api/rows/2/image"), "changed since it was embedded")
        r = client.get("/api/rows/0/image")
        assert r.status_code == 200 and r.content == originals[0]
    for i in (1, 2):
        _restore(data / f"p{i}.jpg", originals[i], stats[i])


def _restore(path: Path, content: bytes, stat: os.stat_result) -> None:
    """Put back a photo as it was embedded (bytes and mtime), so later tests see the embedded file."""
    path.unlink()
    path.write_bytes(content)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _edit(store: Path, root: str, rel: str) -> None:
    """The store's manifest pointed at `root`, its first row's path at `rel`."""
    manifest = json.loads((store / "manifest.json").read_text())
    (store / "manifest.json").write_text(json.dumps(dict(manifest, source_root=root)))
    meta = store / "meta" / "00000.parquet"
    table = pq.read_table(meta)
    paths = table["path"].to_pylist()
    column = table.schema.get_field_index("path")
    pq.write_table(table.set_column(column, "path", pa.array([rel, *paths[1:]], pa.string())), meta)


def test_a_manifest_edited_to_point_at_the_filesystem_root_is_not_served(collection, tmp_path_factory):
    store = collection / "edited"
    shutil.copytree(collection / "st", store)
    _edit(store, "/", "etc/passwd")
    index = collection / "ix-edited"
    assert _index(store, index).returncode == 0  # a row path under its root: the send decides
    with _served(index, tmp_path_factory) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/api/rows/0").json()["path"] == "/etc/passwd"
        _refused(client.get("/api/rows/0/image"), "changed since it was embedded")
        _refused(client.get("/api/rows/0/thumb?size=64"), "changed since it was embedded")


@pytest.mark.parametrize(
    ("rel", "says", "installed"),
    [
        ("../../../etc/passwd", "'../../../etc/passwd' is unsafe (has a '..' part)", True),
        ("/etc/passwd", "'/etc/passwd' is unsafe (absolute)", False),  # a further case, in this process
    ],
)
def test_a_store_whose_row_paths_leave_their_root_is_refused_in_one_line(
    collection, tmp_path, rel, says, installed
):
    store = tmp_path / "edited"
    shutil.copytree(collection / "st", store)
    _edit(store, str(collection / "data"), rel)
    _one_line_error(_index(store, tmp_path / "ix", installed), f"{store}: row path {says}")
    assert not os.path.exists(tmp_path / "ix")


def test_a_store_whose_source_root_is_not_absolute_is_refused_where_its_paths_are_read(collection, tmp_path):
    store = tmp_path / "edited"
    shutil.copytree(collection / "st", store)
    _edit(store, "etc", "passwd")
    assert _index(store, tmp_path / "ix").returncode == 0  # vectors only: no file is named
    run = _msfkit("search", str(tmp_path / "ix"), f"{store}:0", "--json")
    _one_line_error(run, "its source root 'etc' is not an absolute path")


def _one_line_error(run: subprocess.CompletedProcess, says: str) -> None:
    assert run.returncode == 1, run.stdout
    assert run.stderr.startswith("Error: ") and run.stderr.count("\n") == 1, run.stderr
    assert says in run.stderr, run.stderr


def test_galleries_draw_a_row_only_while_it_is_the_embedded_file(collection, tmp_path):
    """search --html and dedup --html read result rows through the same rule as the server: a photo
    swapped for a symlink to an image outside the source root is drawn as a tile saying why."""
    from msfkit.index import build_index
    from msfkit.retrieval.render import _Tiles

    data, index = collection / "data", collection / "ix-gallery"
    build_index(collection / "st", index)  # in this process: the galleries are the test
    original, stat = (data / "p1.jpg").read_bytes(), (data / "p1.jpg").stat()
    drawn = _Tiles(160).data_uri(str(data / "p1.jpg"))
    secret = _Tiles(160).data_uri(str(collection / "secret.jpg"))
    query = tmp_path / "query.jpg"
    query.write_bytes((data / "p0.jpg").read_bytes())

    def galleries(installed: bool) -> list[str]:
        """The two pages, by the installed command or (before the swap) the click group in this process."""
        pages = []
        for command in (
            ["search", str(index), str(query), "-k", "3"],
            ["dedup", str(index), "--threshold", "-1"],
        ):
            page = tmp_path / f"{command[0]}.html"
            run = (_msfkit if installed else in_process)(*command, "--html", str(page), "--force")
            assert run.returncode == 0, run.stderr
            pages.append(page.read_text())
        return pages

    assert all(drawn in page for page in galleries(installed=False))  # the row's own image, before the swap
    (data / "p1.jpg").unlink()
    (data / "p1.jpg").symlink_to(collection / "secret.jpg")
    try:
        pages = galleries(installed=True)
    finally:
        _restore(data / "p1.jpg", original, stat)
    assert not any(secret in page or drawn in page for page in pages)
