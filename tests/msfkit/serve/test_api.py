"""The JSON API of a running `msfkit serve`, through a real HTTP client (httpx) on a real index of photos."""

from __future__ import annotations

import http.client
import io
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

import msfkit
from tests.msfkit.index_stores import PLANTED


def _rows(body, query=0):
    return [hit["row"] for hit in body["queries"][query]["results"]]


def _jpeg(path: Path) -> bytes:
    return path.read_bytes()


@pytest.mark.slow
def test_health_info_and_the_default_loopback_address(server, client, index):
    assert urlsplit(server.url).hostname == "127.0.0.1"
    assert client.get("/api/health").json() == {"status": "ok", "rows": len(index), "model": True}
    info = client.get("/api/info").json()
    assert info["index"]["count"] == len(index) == 21 and info["index"]["dim"] == index.dim
    assert info["model"]["loaded"] and info["model"]["fingerprint"] == index.model["fingerprint"]
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert (
        page.headers["x-content-type-options"] == "nosniff"
        and "default-src 'self'" in page.headers["content-security-policy"]
    )


@pytest.mark.slow
def test_an_uploaded_image_finds_what_the_library_finds(client, index, photo_index):
    photo = sorted(photo_index[2].glob(f"*_{PLANTED[0]}.jpg"))[0]  # a re-encoded copy
    r = client.post("/api/search", params={"limit": 5}, files={"image": (photo.name, _jpeg(photo))})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = index.search([str(photo)], k=5)  # the file, read as the collection was
    assert _rows(body) == expected["row"].tolist()
    assert [h["score"] for h in body["queries"][0]["results"]] == pytest.approx(expected["score"], abs=1e-4)
    assert body["queries"][0]["query"] == photo.name
    timing = dict(part.split(";dur=") for part in r.headers["server-timing"].split(", "))
    assert list(timing) == ["decode", "embed", "search"] and all(float(ms) > 0 for ms in timing.values())
    top = body["queries"][0]["results"][0]
    assert top["path"] == str(photo) and top["name"] == photo.name and top["folder"] == "photos"
    raw = client.post("/api/search?limit=5", content=_jpeg(photo), headers={"content-type": "image/jpeg"})
    assert _rows(raw.json()) == _rows(body)  # the raw body is the same query


@pytest.mark.slow
def test_two_uploads_in_one_request_answer_in_order(client, photo_index):
    a, b = sorted(photo_index[2].glob("*.jpg"))[:2]
    files = [("image", (a.name, _jpeg(a))), ("image", (b.name, _jpeg(b)))]
    body = client.post("/api/search", params={"limit": 1}, files=files).json()
    assert [q["query"] for q in body["queries"]] == [a.name, b.name]
    assert [q["results"][0]["path"] for q in body["queries"]] == [str(a), str(b)]


@pytest.mark.slow
def test_row_search_and_neighbours_of_a_row(client, index):
    found = client.get("/api/search", params={"row": 0, "limit": 4}).json()
    assert _rows(found)[0] == 0 and found["queries"][0]["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    copies = set(index.search(index.absolute_paths([0]), k=4)["row"])
    assert set(_rows(found)) == copies  # the row's own vector finds what its image file finds
    near = client.get("/api/rows/0/neighbors", params={"limit": 3}).json()
    assert _rows(near) == _rows(found)[1:4] and 0 not in _rows(near)
    posted = client.post("/api/search", json={"rows": [0, 5], "limit": 4}).json()
    assert _rows(posted, 0) == _rows(found) and _rows(posted, 1)[0] == 5


@pytest.mark.slow
def test_pages_join_into_the_whole_list(client, index):
    whole = client.get("/api/search", params={"row": 7, "limit": 21}).json()
    assert len(_rows(whole)) == 21 and not whole["more"]
    pages, offset = [], 0
    while True:
        page = client.get("/api/search", params={"row": 7, "offset": offset, "limit": 5}).json()
        pages += page["queries"][0]["results"]
        offset += 5
        if not page["more"]:
            break
    assert [h["row"] for h in pages] == _rows(whole)
    assert [h["rank"] for h in pages] == list(range(1, 22))


@pytest.mark.slow
def test_a_vector_query(client, index, photo_index):
    vector = msfkit.open_store(photo_index[1]).take(np.array([4]))[0]
    body = client.post("/api/search", json={"vector": vector.tolist(), "limit": 3}).json()
    assert _rows(body)[0] == 4
    wrong = client.post("/api/search", json={"vector": [1.0, 2.0]})
    assert wrong.status_code == 400 and f"vectors of {index.dim} numbers" in wrong.json()["error"]


@pytest.mark.slow
def test_image_bytes_and_cached_thumbnails(client, index, server_cache):
    path = Path(index.absolute_paths([3])[0])
    r = client.get("/api/rows/3/image")
    assert r.status_code == 200 and r.content == path.read_bytes()
    assert r.headers["content-type"] == "image/jpeg"
    thumb = client.get("/api/rows/3/thumb", params={"size": 64})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    im = Image.open(io.BytesIO(thumb.content))
    assert max(im.size) == 64 and np.asarray(im).std() > 10  # a real picture, not a blank tile
    cached = list(server_cache.rglob("*.jpg"))
    assert cached and all(p.stat().st_size > 0 for p in cached)
    assert client.get("/api/rows/3/thumb", params={"size": 64}).content == thumb.content
    assert client.get("/api/rows/3").json()["width"] == Image.open(path).width
    bad = client.get("/api/rows/3/thumb", params={"size": 100000})
    assert bad.status_code == 400 and "thumbnail size" in bad.json()["error"]


@pytest.mark.slow
def test_dedup_groups_and_the_removal_list(client, index):
    body = client.get("/api/dedup", params={"threshold": 0.96}).json()
    expected = index.dedup(threshold=0.96)
    assert body["groups_total"] == expected["group"].nunique() == 3 and body["images"] == len(expected)
    first = body["groups"][0]
    assert [m["row"] for m in first["members"]] == expected[expected["group"] == 0]["row"].tolist()
    assert first["kept"] == min(m["row"] for m in first["members"])  # keep=first
    csv = client.get("/api/dedup/removals.csv", params={"threshold": 0.96})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == "path,group,kept,reason" and len(lines) == 1 + len(expected) - 3
    chosen = first["members"][-1]["row"]
    csv = client.get("/api/dedup/removals.csv", params={"threshold": 0.96, "choose": f"0:{chosen}"}).text
    mine = [line for line in csv.splitlines() if line.endswith(",chosen")]
    assert len(mine) == first["size"] - 1 and all(index.absolute_paths([chosen])[0] in m for m in mine)
    other = client.get("/api/dedup/removals.csv", params={"threshold": 0.96, "choose": f"1:{chosen}"})
    assert other.status_code == 400 and "is not in group 1" in other.json()["error"]


@pytest.mark.slow
def test_every_threshold_is_a_cut_of_one_graph_with_the_groups_of_dedup(client, index):
    for t in (0.9, 0.995, 0.85, 0.96, 0.5):  # 0.5 is below the graph's floor: built again, lower
        body = client.get("/api/dedup", params={"threshold": t, "limit": 200}).json()
        expected = index.dedup(threshold=t)
        got = [(g["group"], m["row"], m["score"]) for g in body["groups"] for m in g["members"]]
        scores = [round(float(s), 6) for s in expected["score"]]
        want = list(zip(expected["group"], expected["row"], scores, strict=True))
        assert got == want and body["images"] == len(expected), t


@pytest.mark.slow
def test_the_auto_threshold_is_measured_once_as_msfkit_dedup_measures_it(client, index):
    from msfkit.retrieval.calibrate import calibrate

    body = client.get("/api/dedup/auto").json()
    cal = calibrate(index)
    assert body["threshold"] == pytest.approx(cal.threshold, abs=1e-5)
    assert body["explanation"].startswith("threshold auto: 0.") and body["images"] == cal.images == 21
    sims = body["similarities"]
    assert sims["found_copies"] == cal.found_copies == 12
    assert sims["distinct"] == pytest.approx(cal.distinct_similarity, abs=1e-5)
    assert sims["found"] > body["threshold"] > sims["distinct"]
    pair = sims["closest_pair"]
    assert [p["path"] for p in pair] == index.absolute_paths([p["row"] for p in pair])
    assert client.get("/api/dedup/auto").json() == body  # the same answer again
    groups = client.get("/api/dedup", params={"threshold": body["threshold"]}).json()
    assert groups["groups_total"] == 3 and groups["images"] == 12  # the planted copies, nothing else


@pytest.mark.slow
def test_bad_uploads_are_refused_with_a_message(client, tmp_path, photo_index):
    def post(data: bytes, name: str = "x.jpg"):
        r = client.post("/api/search", files={"image": (name, data)})
        return r.status_code, r.json()["error"]

    status, error = post(b"hello, I am text\n" * 10, "notes.txt")
    assert status == 415 and error.startswith("notes.txt: not an image")
    assert post(b"", "empty.jpg") == (400, "empty.jpg: empty upload")
    photo = sorted(photo_index[2].glob("*.jpg"))[0].read_bytes()
    status, error = post(photo[: len(photo) // 2], "half.jpg")
    assert status == 400 and error.startswith("half.jpg: truncated")
    bomb = io.BytesIO()
    Image.new("1", (8000, 8000)).save(bomb, format="PNG")  # 64 MP in a few kilobytes
    status, error = post(bomb.getvalue(), "bomb.png")
    assert status == 413 and "decompression bomb refused" in error
    big = client.post("/api/search", files={"image": ("big.jpg", b"\xff" * (5 * 2**20))})
    assert big.status_code == 413 and "larger than the server's limit" in big.json()["error"]
    form = client.post("/api/search", data={"note": "no file"})
    assert form.status_code == 415
    none = client.post("/api/search", files={"other": ("a.txt", b"")}, data={"x": "1"})
    assert none.status_code == 400


@pytest.mark.slow
def test_bad_parameters_are_4xx_with_a_message(client):
    for url, status, words in [
        ("/api/search?row=0&limit=0", 400, "limit between"),
        ("/api/search?row=0&offset=990&limit=20", 400, "1000 deep"),
        ("/api/search?row=abc", 400, "whole numbers"),
        ("/api/search", 400, "?row=N"),
        ("/api/dedup?threshold=2", 400, "between -1 and 1"),
        ("/api/dedup?threshold=nan", 400, "not NaN"),
        ("/api/dedup?keep=oldest", 400, "--keep must be one of"),
        ("/api/rows/21", 404, "rows 0 to 20"),
        ("/api/rows/99999999999/image", 404, "rows 0 to 20"),
        ("/api/nothing", 404, "not found"),
    ]:
        r = httpx.get(client.base_url.join(url))
        assert (r.status_code, words in r.json()["error"]) == (status, True), (url, r.text)


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/api/rows/../../../etc/passwd",
        "/api/rows/0/image/../../../../etc/passwd",
        "/api/rows/%2e%2e%2f%2e%2e%2fetc%2fpasswd/image",
        "/api/rows/-1/image",
        "/api/rows/0/image?path=/etc/passwd".replace("image?", "thumb/x?"),
        "//etc/passwd",
        "/static//etc/passwd",
    ],
)
@pytest.mark.slow
def test_path_traversal_attempts_are_404(server, path):
    """Sent byte for byte (http.client does not tidy `..` away as browsers and httpx do)."""
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 404, (path, r.status, body[:200])
    assert b"root:" not in body


@pytest.mark.slow
def test_a_query_parameter_never_names_a_file(client, index):
    r = client.get("/api/rows/0/image", params={"path": "/etc/passwd"})
    assert r.status_code == 200 and r.content == Path(index.absolute_paths([0])[0]).read_bytes()


@pytest.mark.slow
def test_nothing_is_written_outside_the_cache(server, client, photo_index, server_cache):
    folders = [photo_index[0], photo_index[1], photo_index[2]]
    before = {p: p.stat().st_mtime_ns for f in folders for p in f.rglob("*")}
    photo = sorted(photo_index[2].glob("*.jpg"))[1]
    client.post("/api/search", files={"image": (photo.name, photo.read_bytes())})
    client.get("/api/rows/1/thumb")
    client.get("/api/dedup/removals.csv", params={"threshold": 0.9})
    after = {p: p.stat().st_mtime_ns for f in folders for p in f.rglob("*")}
    assert after == before
    assert not list((server_cache).rglob("*.upload"))  # each upload is removed once decoded
