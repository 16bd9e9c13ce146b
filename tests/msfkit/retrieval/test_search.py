"""msfkit.retrieval.search and msfkit.retrieval.render on real photos embedded by a real model."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from msfkit.models.errors import MsfkitError
from msfkit.retrieval.render import BACKGROUND, MISSING, PAD, contact_sheet, gallery_html, sheet_size
from msfkit.retrieval.search import COLUMNS, search
from msfkit.store import open_store
from tests.msfkit.index_stores import photo_index_folders


@pytest.fixture
def photo_index(photo_paths, tmp_path_factory):
    return photo_index_folders(photo_paths, tmp_path_factory)


def test_an_indexed_photo_finds_itself_then_its_copies(photo_index):
    index, _, photos, _ = photo_index
    query = photos / "audio_mixer.jpg"
    df = search(index, [query], k=4)
    assert tuple(df.columns) == COLUMNS
    assert df["rank"].tolist() == [1, 2, 3, 4]
    assert df["path"].iloc[0] == str(query) and df["score"].iloc[0] == pytest.approx(1, abs=1e-4)
    assert set(df["path"].iloc[1:]) == {str(photos / f"audio_mixer_{c}.jpg") for c in ("q40", "half", "crop")}
    assert df["score"].is_monotonic_decreasing
    assert df.attrs["errors"] == []


def test_store_rows_and_folders_are_queries_too(photo_index, tmp_path):
    index, store, photos, _ = photo_index
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "bear.jpg").write_bytes((photos / "bear.jpg").read_bytes())
    df = search(index, [f"{store}:4,0", folder], k=2)
    files = open_store(store).absolute_paths()
    assert df["query"].unique().tolist() == [f"{store}:4", f"{store}:0", str(folder / "bear.jpg")]
    first = df[df["rank"] == 1]
    assert first["path"].tolist() == [str(files[4]), str(files[0]), str(photos / "bear.jpg")]
    assert first["query_path"].tolist()[:2] == [str(files[4]), str(files[0])]


def test_vectors_are_queries_and_results_match_brute_force(photo_index):
    index, store, _, _ = photo_index
    x = open_store(store).vectors
    q = x[[1, 7]] + 0.05
    df = search(index, q, k=5)
    sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ x.T
    expected = np.argsort(-sims, axis=1)[:, :5]
    assert df["row"].to_numpy().reshape(2, 5).tolist() == expected.tolist()


def test_unreadable_queries_are_reported_and_the_others_answered(photo_index, tmp_path):
    index, _, photos, _ = photo_index
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes((photos / "bear.jpg").read_bytes()[:300])
    queries = [tmp_path / "empty.jpg", photos / "bear.jpg", tmp_path / "cut.jpg", tmp_path / "gone.jpg"]
    df = search(index, queries, k=1)
    assert df["query"].tolist() == [str(photos / "bear.jpg")]
    reasons = dict(df.attrs["errors"])
    assert set(reasons) == {str(tmp_path / n) for n in ("empty.jpg", "cut.jpg", "gone.jpg")}
    assert "zero bytes" in reasons[str(tmp_path / "empty.jpg")]
    assert all(r and "\n" not in r for r in reasons.values())


def test_another_model_is_refused(photo_index, tiny_model_dir):
    index, _, photos, model = photo_index
    with pytest.raises(MsfkitError, match="is not the model this index was built with"):
        search(index, [photos / "bear.jpg"], model=str(tiny_model_dir))
    assert len(search(index, [photos / "bear.jpg"], model=str(model), k=1)) == 1


def test_store_rows_of_another_model_are_refused(photo_index, tmp_path):
    from tests.msfkit.index_stores import write_vector_store

    index, _, _, _ = photo_index
    other = write_vector_store(tmp_path / "other", np.eye(3, 512, dtype=np.float32))
    with pytest.raises(MsfkitError, match="embedded with model"):
        search(index, [f"{other}:0"])


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


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.headings = 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        self.headings += tag == "h2"


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


@pytest.mark.parametrize(
    ("rows", "message"),
    [("0-999999999", "row 999999999 is past the end"), ("21", "row 21 is past the end"), ("5-2", "row 5-2")],
)
def test_store_row_ranges_are_checked_before_they_are_expanded(photo_index, rows, message):
    import tracemalloc

    index, store, _, _ = photo_index
    tracemalloc.start()
    with pytest.raises(MsfkitError, match=message):
        search(index, [f"{store}:{rows}"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20  # a billion row numbers would be gigabytes
