"""msfkit.retrieval.render: contact sheets and HTML galleries of real search results."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msfkit.retrieval.render import BACKGROUND, MISSING, PAD, contact_sheet, gallery_html, sheet_size
from msfkit.retrieval.search import search


@pytest.mark.slow
def test_contact_sheet_has_the_expected_size_and_a_tile_per_result(photo_index, tmp_path):
    index, _, photos, _ = photo_index
    df = search(index, [photos / "bear.jpg", photos / "dusk.jpg"], k=3)
    out = contact_sheet(df, tmp_path / "sheet.png", thumb=64)
    sheet = Image.open(out)
    assert sheet.format == "PNG" and sheet.size == sheet_size(2, 3, 64) == (
        PAD + 4 * (64 + PAD),
        2 * (PAD + 64 + 16) + PAD,
    )
    pixels = np.asarray(sheet)
    for line in range(2):
        for col in range(4):
            x, y = PAD + col * (64 + PAD), PAD + line * (64 + 16 + PAD)
            tile = pixels[y + 16 : y + 48, x + 8 : x + 56]  # the middle of the tile: a photo, not background
            assert (tile != BACKGROUND).any(axis=2).mean() > 0.5
    assert list(tmp_path.iterdir()) == [out]


def test_gallery_embeds_every_query_and_neighbour(photo_index, tmp_path):
    index, store, photos, _ = photo_index
    queries = [photos / "bear.jpg", f"{store}:8"]
    df = search(index, queries, k=4)
    page = gallery_html(df, tmp_path / "g.html").read_text()
    parsed = _Images()
    parsed.feed(page)
    assert parsed.headings == 2 and len(parsed.images) == 2 * (1 + 4)
    titles = [im["title"] for im in parsed.images]
    assert set(df["path"]) | set(df["query_path"]) <= set(titles)
    for im in parsed.images:
        assert im["src"].startswith("data:image/jpeg;base64,")
        assert Image.open(io.BytesIO(base64.b64decode(im["src"].split(",", 1)[1]))).size == (160, 160)
    assert 'src="http' not in page and "src='/" not in page


def test_a_missing_result_file_becomes_a_labelled_tile(photo_index, tmp_path):
    index, _, photos, _ = photo_index
    df = search(index, [photos / "bear.jpg"], k=2)
    df.loc[1, "path"] = str(tmp_path / "moved.jpg")
    sheet = np.asarray(Image.open(contact_sheet(df, tmp_path / "s.png", thumb=64)))
    assert sheet.shape == (sheet_size(1, 2, 64)[1], sheet_size(1, 2, 64)[0], 3)
    x = PAD + 2 * (64 + PAD)
    missing = sheet[PAD + 20 : PAD + 64, x : x + 64]  # below the "missing" text
    assert (missing == MISSING).all(axis=2).mean() > 0.95
    found = sheet[PAD + 20 : PAD + 44, PAD + 72 : PAD + 136]
    assert (found == MISSING).all(axis=2).mean() < 0.5


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.headings = 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        self.headings += tag == "h2"


def test_captions_name_the_folder_and_score_and_tiles_link_to_the_originals(photo_index, tmp_path):
    index, _, photos, _ = photo_index
    df = search(index, [photos / "bear.jpg"], k=3)
    page = gallery_html(df, tmp_path / "new" / "folder" / "g.html").read_text()  # folders created
    for hit in df.itertuples():
        assert f'href="{Path(hit.path).as_uri()}"' in page
        assert f"{hit.rank}. {hit.score:.4f} {Path(hit.path).parent.name} {Path(hit.path).name}" in page
    sheet = contact_sheet(df, tmp_path / "other" / "s.png", thumb=64)
    assert Image.open(sheet).size == sheet_size(1, 3, 64)


def test_a_hit_in_object_storage_is_drawn_and_linked_by_its_url(s3_bucket, photo_paths, tmp_path):
    import pandas as pd

    from msfkit.data.remote import open_url

    url = f"s3://{s3_bucket}/photos/cats/a.jpg"
    open_url(url).write_bytes(photo_paths[0].read_bytes())
    df = pd.DataFrame([{"query": "q", "query_path": str(photo_paths[1]), "rank": 1, "score": 0.9, "row": 0,
                        "path": url, "label": None}])  # fmt: skip
    page = gallery_html(df, tmp_path / "g.html").read_text()
    assert f'href="{url}"' in page and "cats a.jpg" in page and page.count("data:image/") == 2
