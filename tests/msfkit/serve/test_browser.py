"""The page of a running `msfkit serve` in headless Chromium: upload, results, explore, scroll,
duplicates, the map's lasso."""

from __future__ import annotations

import base64
import csv
import io

import httpx
import numpy as np
import pytest
from matplotlib.path import Path as Polygon

import msfkit
from msfkit.curate import outliers
from msfkit.serve.curation import CurationViews
from msfkit.serve.rows import Rows
from tests.msfkit.index_stores import PLANTED
from tests.msfkit.serve import browser
from tests.msfkit.serve.planted import LEAKED
from tests.msfkit.serve.server import Server, server_env

pytestmark = pytest.mark.skipif(not browser.available(), reason=browser.SKIP)


@pytest.fixture(scope="module")
def chromium():
    with browser.browser() as context:
        yield context


@pytest.fixture
def page(chromium, server):
    page = chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    yield page
    page.close()
    assert not errors, errors  # no script error on the way


@pytest.fixture(scope="module")
def index(photo_index):
    return msfkit.open_index(photo_index[0])


def tile_rows(page) -> list[int]:
    return [int(r) for r in page.eval_on_selector_all("#results .tile", "ts => ts.map(t => t.dataset.row)")]


def shot(page, tmp_path, name: str):
    page.wait_for_load_state("networkidle")  # thumbnails loaded
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path)
    assert browser.not_blank(path), f"{path} looks blank"
    return path


@pytest.mark.slow
def test_upload_shows_neighbours_and_a_click_explores_from_a_result(page, index, photo_index, tmp_path):
    photo = sorted(photo_index[2].glob(f"*_{PLANTED[1]}.jpg"))[0]
    page.set_input_files("#file", str(photo))
    page.wait_for_function("document.querySelectorAll('#results .tile').length === 21")
    expected = index.search([str(photo)], k=21)["row"].tolist()
    assert tile_rows(page) == expected
    first = page.inner_text("#results .tile >> nth=0")
    assert first.startswith("1. 1.000") and "photos" in first and str(photo) not in first
    path = page.locator("#results .tile >> nth=0").locator(".path")  # relative, the full path on hover
    assert (path.inner_text(), path.get_attribute("title")) == (photo.name, str(photo))
    assert "uploaded: " + photo.name in page.inner_text("#query")
    shot(page, tmp_path, "search")

    row = expected[5]
    page.click(f'#results .tile[data-row="{row}"]')
    page.wait_for_function(f"document.querySelector('#query-caption').textContent.includes('(row {row})')")
    page.wait_for_function("document.querySelectorAll('#results .tile').length === 20")
    vector = msfkit.open_store(photo_index[1]).vectors[row : row + 1]
    neighbours = [r for r in index.search(vector, k=21)["row"].tolist() if r != row]
    assert tile_rows(page) == neighbours
    assert page.url.endswith(f"#row={row}")
    shot(page, tmp_path, "explore")
    page.go_back()  # the browser's history walks back through explored rows
    page.wait_for_function("!location.hash.startsWith('#row=')")


@pytest.mark.slow
def test_a_dropped_image_is_searched(page, index, photo_index):
    photo = sorted(photo_index[2].glob("*.jpg"))[4]
    data = base64.b64encode(photo.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const t = new DataTransfer();
            t.items.add(new File([bytes], name, {type: "image/jpeg"}));
            return t;
        }""",
        [data, photo.name],
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    page.wait_for_function("document.querySelectorAll('#results .tile').length > 0")
    assert tile_rows(page)[0] == index.search([str(photo)], k=1)["row"].iloc[0]


@pytest.mark.slow
def test_results_come_page_by_page_as_one_scrolls(page, server):
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/neighbors?" in r.url else None)
    # a short window, so that the page fills less than it holds and the rest comes by scrolling (at
    # 900 px it filled itself with all 20 tiles, and the scrolling loop raced the last page)
    page.set_viewport_size({"width": 1280, "height": 500})
    page.goto(server.url + "?page=6#row=0")
    page.wait_for_function("document.querySelectorAll('#results .tile').length >= 6")
    page.wait_for_load_state("networkidle")  # the pages that fill the window are in
    seen = len(tile_rows(page))
    assert seen < 20 and not page.locator("#more").is_hidden()
    scrolls = 0
    while seen < 20:  # counted once a round: a page may come in between two counts
        page.locator("#sentinel").scroll_into_view_if_needed()
        page.wait_for_function(f"document.querySelectorAll('#results .tile').length > {seen}")
        seen, scrolls = len(tile_rows(page)), scrolls + 1
    assert scrolls >= 1
    rows = tile_rows(page)
    assert len(rows) == 20 and len(set(rows)) == 20 and 0 not in rows  # every neighbour once, not itself
    offsets = sorted(int(u.split("offset=")[1].split("&")[0]) for u in asked)
    assert offsets == [0, 6, 12, 18]  # four pages of six
    page.wait_for_function("document.querySelector('#more').hidden")  # the end: no more to ask for


@pytest.mark.slow
def test_a_file_that_is_not_an_image_shows_the_servers_message(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n" * 20)
    page.set_input_files("#file", str(notes))
    page.wait_for_function("document.querySelector('#status').classList.contains('error')")
    assert page.inner_text("#status").startswith("notes.txt: not an image")


@pytest.mark.slow
def test_duplicates_view_choose_what_to_keep_and_download_the_list(page, index, server, tmp_path):
    page.click("#tab-dedup")
    page.wait_for_function("document.querySelectorAll('.group').length > 0")
    auto = httpx.get(server.url + "api/dedup/auto", timeout=60).json()
    assert auto["threshold"] is not None and 0.95 < auto["threshold"] < 1
    assert page.inner_text("#dedup-auto") == auto["explanation"]  # why the slider starts there
    assert page.inner_text("#threshold-value") == str(auto["threshold"])
    groups = index.dedup(threshold=auto["threshold"])
    assert page.locator(".group").count() == groups["group"].nunique() == 3
    assert (
        page.inner_text("#dedup-status")
        == f"3 groups, {len(groups)} images at similarity >= {auto['threshold']}"
    )
    first = page.locator('.group[data-group="0"] .tile')
    assert first.count() == 4 and "keep" in first.nth(0).get_attribute("class")
    shot(page, tmp_path, "dedup")

    chosen = int(first.nth(2).get_attribute("data-row"))
    first.nth(2).click()
    page.wait_for_function(
        f"document.querySelector('.group[data-group=\"0\"] .tile.keep').dataset.row === '{chosen}'"
    )
    with page.expect_download() as download:
        page.click("#download")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert len(rows) == len(groups) - 3
    mine = [r for r in rows if r["group"] == "0"]
    kept = index.absolute_paths([chosen])[0]
    assert len(mine) == 3 and all(r["kept"] == kept and r["reason"] == "chosen" for r in mine)

    page.eval_on_selector("#threshold", "s => { s.value = '0.999'; s.dispatchEvent(new Event('change')); }")
    page.wait_for_function("document.querySelector('#dedup-status').textContent.includes('>= 0.999')")
    strict = index.dedup(threshold=0.999)
    assert page.locator(".group").count() == strict["group"].nunique() < 3


@pytest.mark.slow
def test_a_lasso_on_the_map_shows_those_images_and_adds_them_to_the_removal_list(
    page, index, server, tmp_path
):
    page.click("#tab-map")
    page.wait_for_function("document.querySelector('#map-status').textContent.includes('drag a lasso')")
    body = httpx.get(server.url + "api/map", timeout=60).json()
    points = np.frombuffer(base64.b64decode(body["points"]), dtype="<f4").reshape(-1, 2)
    box = page.locator("#map-canvas").bounding_box()
    left, top, bottom = box["x"] + 4, box["y"] + 4, box["y"] + box["height"] - 4
    middle = box["x"] + box["width"] / 2
    with page.expect_request("**/api/map/select**") as asked:  # a lasso round the canvas's left half
        page.mouse.move(left, top)
        page.mouse.down()
        for x, y in [(middle, top), (middle, bottom), (left, bottom), (left, top + 8)]:
            page.mouse.move(x, y, steps=8)
        page.mouse.up()
    polygon = np.array(asked.value.post_data_json["polygon"])
    x0, x1 = float(points[:, 0].min()), float(points[:, 0].max())
    assert polygon[:, 0].min() < x0 and polygon[:, 0].max() == pytest.approx(
        (x0 + x1) / 2, abs=(x1 - x0) / 100
    )
    inside = np.flatnonzero(Polygon(polygon).contains_points(points)).tolist()
    assert 0 < len(inside) < 21 and all(points[r, 0] < (x0 + x1) / 2 for r in inside)
    page.wait_for_function(f"document.querySelectorAll('#map-grid .tile').length === {len(inside)}")
    grid = [int(r) for r in page.eval_on_selector_all("#map-grid .tile", "ts => ts.map(t => t.dataset.row)")]
    assert (
        grid == inside and page.inner_text("#map-selection-text") == f"{len(inside)} images inside the lasso"
    )
    path = page.locator("#map-grid .tile .path").first  # relative to the collection's root; full on hover
    full = index.absolute_paths([inside[0]])[0]
    assert (path.inner_text(), path.get_attribute("title")) == (full.rsplit("/", 1)[1], full)
    shot(page, tmp_path, "map")

    page.click("#map-remove")
    page.click("#tab-dedup")
    page.wait_for_function("!document.querySelector('#marked').hidden")
    assert page.inner_text("#marked-text").startswith(f"{len(inside)} images marked on the map")
    with page.expect_download() as download:
        page.click("#download")
    removed = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert set(index.absolute_paths(inside)) <= {r["path"] for r in removed}
    assert {r["path"] for r in removed if r["reason"] == "marked"} <= set(index.absolute_paths(inside))


@pytest.mark.slow
def test_the_curation_lists_are_views_of_the_page(page, index, server):
    page.goto(server.url + "#outliers")
    page.wait_for_function("document.querySelectorAll('#list-grid .tile').length === 21")
    rows = [int(r) for r in page.eval_on_selector_all("#list-grid .tile", "ts => ts.map(t => t.dataset.row)")]
    assert rows == outliers(index)["row"].tolist()
    assert page.inner_text("#list-status") == "21 images listed (k = 10)"
    assert "neighbour of " in page.inner_text("#list-grid .tile >> nth=0")
    assert page.input_value("#outliers-score") == "knn"
    assert "mean cosine distance" in page.inner_text("#list-about")
    page.select_option("#outliers-score", "mahalanobis")  # 21 photos in 512-d: refused, in one line
    page.wait_for_function("document.querySelector('#list-status').textContent.includes('needs more images')")
    assert page.get_attribute("#list-status", "class") == "error"
    assert "Mahalanobis" in page.inner_text("#list-about")
    assert page.locator("#list-grid .tile").count() == 0
    page.select_option("#outliers-score", "knn")
    page.wait_for_function("document.querySelectorAll('#list-grid .tile').length === 21")
    page.click("#tab-leaks")  # one store: the page says how to see leaks, as a note, not an error
    page.wait_for_function("document.querySelector('#outliers-bar').hidden")
    page.wait_for_function("document.querySelector('#list-status').textContent.includes(' TRAIN TEST ')")
    assert "msfkit index TRAIN TEST -o INDEX" in page.inner_text("#list-status")
    assert page.get_attribute("#list-status", "class") == "muted" and page.locator("#leaks-bar").is_hidden()
    assert page.locator("#list-grid .tile").count() == 0


@pytest.mark.slow
def test_leaks_of_the_chosen_test_store_come_page_by_page_at_the_chosen_similarity(
    chromium, planted, tmp_path
):
    """The planted index of two stores (tests/msfkit/serve/planted.py): TEST's rows LEAKED copy TRAIN's."""

    def rows() -> list[int]:
        return [
            int(r) for r in page.eval_on_selector_all("#list-grid .tile", "ts => ts.map(t => t.dataset.row)")
        ]

    def wait_for(count: int, status: str) -> None:
        page.wait_for_function(
            f"document.querySelectorAll('#list-grid .tile').length === {count} && "
            f"document.querySelector('#list-status').textContent.includes('{status}')"
        )

    with Server(planted, server_env(tmp_path / "cache", tmp_path / "hf")) as server:
        page, errors = chromium.new_page(), []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "?page=2#leaks")  # pages of two
        wait_for(2, "of test-store have")
        assert rows() == sorted(LEAKED)[:2] and page.locator("#list-more").is_visible()
        assert page.inner_text("#list-status") == (
            "3 images of test-store have a near copy in another store (similarity >= 0.95)"
        )
        assert page.eval_on_selector_all("#leaks-test option", "os => os.map(o => o.textContent)") == [
            "train-store",
            "test-store",
        ]
        assert page.input_value("#leaks-test") == "1"  # TEST: the last store unless chosen
        first = page.locator("#list-grid .tile >> nth=0 >> .note")
        assert first.inner_text() == f"copy of train/img_{LEAKED[31]:05d}.jpg"
        page.click("#list-more")
        wait_for(3, "of test-store have")
        assert rows() == sorted(LEAKED) and page.locator("#list-more").is_hidden()

        page.select_option("#leaks-test", "0")  # the other way round: TRAIN's images copied in TEST
        wait_for(2, "of train-store have")
        assert rows() == sorted(LEAKED.values())[:2]
        page.eval_on_selector(
            "#leaks-threshold", "t => { t.value = '0.5'; t.dispatchEvent(new Event('change')); }"
        )  # images of one cluster are ~0.64 alike: at 0.5, most of TRAIN has a near image in TEST
        opened = msfkit.open_index(planted)
        expected = CurationViews(opened, Rows.of(opened), page_limit=200).table("leaks", 0.5, test=0)
        assert len(expected) > len(LEAKED)
        wait_for(2, "(similarity >= 0.5)")
        assert rows() == expected["row"].tolist()[:2] and page.inner_text("#list-status") == (
            f"{len(expected)} images of train-store have a near copy in another store (similarity >= 0.5)"
        )
        page.close()
    assert not errors, errors


@pytest.mark.slow
def test_where_copies_and_distinct_images_overlap_the_slider_stays_and_the_page_says_why(chromium, tmp_path):
    """Noise images and a plain random-init network: re-encoding changes a noise texture more than
    two noise images differ (tests/msfkit/retrieval/test_calibrate.py), so there is no threshold. At
    64 px, as at 224 (and for other seeds), at a twelfth of the compute."""
    import numpy as np
    import torch
    from PIL import Image

    from msfkit.index import build_index
    from msfkit.models import Encoder, EncoderConfig
    from tests.runs import embed

    torch.manual_seed(0)
    Encoder(EncoderConfig(arch="resnet18", image_size=64, resize=64)).save_pretrained(tmp_path / "model")
    rng = np.random.default_rng(0)
    (tmp_path / "noise").mkdir()
    for i in range(16):
        noise = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / "noise" / f"n{i}.png")
    embed([tmp_path / "noise"], str(tmp_path / "model"), tmp_path / "store")
    build_index(tmp_path / "store", tmp_path / "index")
    with Server(tmp_path / "index", server_env(tmp_path / "cache", tmp_path / "hf")) as server:
        auto = httpx.get(server.url + "api/dedup/auto", timeout=120).json()
        assert auto["threshold"] is None and auto["explanation"].startswith(
            "copies and distinct images are not"
        )
        page = chromium.new_page()
        page.goto(server.url + "#dedup")
        page.wait_for_function(
            "document.querySelector('#dedup-status').textContent.includes(' at similarity >= ')"
        )
        assert page.inner_text("#dedup-auto") == auto["explanation"]
        assert "error" in page.get_attribute("#dedup-auto", "class")
        assert page.inner_text("#threshold-value") == "0.95"  # the default, kept
        assert page.inner_text("#dedup-status").endswith(" at similarity >= 0.95")
        page.close()
