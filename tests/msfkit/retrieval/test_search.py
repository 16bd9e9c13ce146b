"""msfkit.retrieval.search on real photos embedded by a real model: images, folders, rows, vectors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from msfkit.models.errors import MsfkitError
from msfkit.retrieval.search import COLUMNS, search
from msfkit.store import open_store


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


@pytest.mark.slow
def test_another_model_is_refused(photo_index, tiny_model_dir):
    index, _, photos, model = photo_index
    different = (
        r"^the query model and the index .* come from different models: .*; search with the index's model$"
    )
    with pytest.raises(MsfkitError, match=different):
        search(index, [photos / "bear.jpg"], model=str(tiny_model_dir))
    assert len(search(index, [photos / "bear.jpg"], model=str(model), k=1)) == 1


def test_store_rows_of_another_model_are_refused(photo_index, tmp_path):
    from tests.msfkit.index_stores import write_vector_store

    index, _, _, _ = photo_index
    other = write_vector_store(tmp_path / "other", np.eye(3, 512, dtype=np.float32))
    different = (
        r"^the query store .*other and the index .* come from different models: fingerprint synthetic "
    )
    with pytest.raises(MsfkitError, match=different):
        search(index, [f"{other}:0"])


@pytest.mark.parametrize(
    ("rows", "message"),
    [("0-999999999", "row 999999999 is past the end"), ("21", "row 21 is past the end")],
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


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("5-2", "the range 5-2 is reversed; write 2-5"),
        ("-5", "'-5' has no first row (rows count from 0, not from the end)"),
        ("a-b", "'a-b' is not a row number or a range of them"),
        ("0,,3", "an empty selector part"),
        ("3-", "'3-' is not a row number or a range of them"),
    ],
)
def test_a_store_row_selector_that_is_not_one_says_what_is_wrong(photo_index, rows, message):
    index, store, _, _ = photo_index
    with pytest.raises(MsfkitError, match=re.escape(f"{store}:{rows}: {message}")):
        search(index, [f"{store}:{rows}"])


def test_a_bf16_store_searched_with_its_own_images_finds_them_at_similarity_one(
    photos_dir, tiny_model_dir, tmp_path
):
    """Queries are embedded with the settings the store was built with (its precision here): a
    stored image searched as a query gives its own row back, at similarity 1 to float rounding."""
    from click.testing import CliRunner

    import msfkit
    from msfkit.cli.main import cli
    from msfkit.embedding import EmbedOptions, embed_items
    from msfkit.models.runtime import cpu_has_fast_bf16
    from msfkit.retrieval.search import query_options

    if not cpu_has_fast_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 or AMX): a bf16 store takes minutes here")
    store = tmp_path / "store"
    args = ["embed", str(photos_dir), "-m", str(tiny_model_dir), "-o", str(store), "--precision", "bf16"]
    result = CliRunner().invoke(cli, [*args, "--workers", "0", "-q"])
    assert result.exit_code == 0, result.output
    index = msfkit.build_index(store, tmp_path / "index", kind="flat")
    assert query_options(index).precision == "bf16"
    files = [str(p) for p in sorted(photos_dir.glob("*.jpg"))]
    first = search(index, files, k=1)
    assert first["path"].tolist() == files
    assert np.abs(first["score"].to_numpy() - 1).max() <= 1e-6
    # the same photos embedded in fp32 are measurably off their rows: the check above has teeth
    fp32, _ = embed_items(msfkit.load(tiny_model_dir), files, EmbedOptions(precision="fp32"))
    assert np.abs((fp32 * open_store(store).vectors).sum(1) - 1).max() > 1e-6
