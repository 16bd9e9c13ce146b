"""load_image / decode_image: every kind of bad file gets its reason; every mode comes out RGB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from msfkit.data.images import BadImageError, decode_image, load_image
from msfkit.models import to_rgb

# file name -> the start of the reason it must be refused with
from tests.bad_images import BAD_REASONS, png_with_header, write_bad_files, write_odd_images


@pytest.mark.parametrize("name", sorted(BAD_REASONS))
def test_each_bad_kind_is_refused_with_its_reason(tmp_path, photo_paths, name):
    reasons = write_bad_files(tmp_path, photo_paths[0])
    with pytest.raises(BadImageError) as info:
        load_image(tmp_path / name)
    assert str(info.value).startswith(reasons[name]), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", sorted(BAD_REASONS))
def test_bytes_decode_as_their_file_does_with_the_same_reasons(tmp_path, photo_paths, name):
    """An upload's bytes go through the same checks as a file on disk (the server decodes them)."""
    reasons = write_bad_files(tmp_path, photo_paths[0])
    path = tmp_path / name
    if not path.is_file() or path.is_symlink():
        pytest.skip("no bytes to send: a folder or a link")
    with pytest.raises(BadImageError) as info:
        decode_image(path.read_bytes())
    assert str(info.value).startswith(reasons[name]) and "\n" not in str(info.value), str(info.value)


def test_bytes_of_a_good_image_give_its_pixels_and_size(photo_paths):
    from_file, from_bytes = decode_image(photo_paths[0]), decode_image(photo_paths[0].read_bytes())
    assert np.array_equal(np.asarray(from_file.image), np.asarray(from_bytes.image))
    assert (from_bytes.width, from_bytes.height, from_bytes.bytes) == (
        from_file.width,
        from_file.height,
        photo_paths[0].stat().st_size,
    )


def test_pixel_limit_is_checked_on_the_header_before_decoding(tmp_path):
    # A 300x300 header with no real pixel data: decoding would say "truncated"/"corrupt",
    # so a "decompression bomb" reason proves the refusal came from the header alone.
    path = tmp_path / "fake.png"
    path.write_bytes(png_with_header(300, 300))
    with pytest.raises(
        BadImageError, match="decompression bomb refused: 300x300 = 90,000 pixels > limit 50,000"
    ):
        load_image(path, max_pixels=50_000)
    with pytest.raises(BadImageError) as info:
        load_image(path)
    assert not str(info.value).startswith("decompression bomb")


def test_missing_file_and_folder_are_unreadable_not_crashes(tmp_path):
    with pytest.raises(BadImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(BadImageError, match="unreadable: not a regular file"):
        load_image(tmp_path / "folder.jpg")


def test_every_mode_and_format_comes_out_as_the_same_rgb_as_to_rgb(tmp_path, photo_paths):
    names = write_odd_images(tmp_path, photo_paths[1])
    assert len(names) == 11
    for name in names:
        img = load_image(tmp_path / name)
        assert img.mode == "RGB", name
        expected = to_rgb(Image.open(tmp_path / name))
        np.testing.assert_array_equal(np.asarray(img), np.asarray(expected), err_msg=name)


def test_exif_rotation_is_applied_and_reported_in_the_size(tmp_path, photo_paths):
    write_odd_images(tmp_path, photo_paths[1])
    decoded = decode_image(tmp_path / "rotated.jpg")
    assert decoded.image.size == (64, 96)
    assert (decoded.width, decoded.height) == (64, 96)
    assert decoded.bytes == (tmp_path / "rotated.jpg").stat().st_size


def test_draft_decodes_large_jpegs_smaller_but_keeps_the_true_size(tmp_path, photo_paths):
    big = tmp_path / "big.jpg"
    Image.open(photo_paths[0]).convert("RGB").resize((1600, 1200)).save(big, quality=90)
    full = decode_image(big)
    draft = decode_image(big, draft_size=150)
    assert full.image.size == (1600, 1200)
    assert draft.image.size == (200, 150)  # 1/8 scale: the largest that keeps the shorter side >= 150
    assert (draft.width, draft.height) == (1600, 1200)
    # a small request never enlarges, and PNGs ignore the draft
    assert decode_image(photo_paths[0], draft_size=1000).image.size == Image.open(photo_paths[0]).size


@pytest.mark.parametrize("size", [(1, 10_000), (100_000, 1), (4000, 12)])
def test_thin_images_are_read_whole(tmp_path, size):
    path = tmp_path / "thin.png"
    Image.new("L", size, 128).save(path)  # a few hundred bytes
    decoded = decode_image(path)
    assert (decoded.width, decoded.height) == size and decoded.image.getpixel((0, 0)) == (128, 128, 128)


def test_a_panorama_is_not_thin(tmp_path):
    path = tmp_path / "pano.jpg"
    Image.new("RGB", (4000, 500), (10, 20, 30)).save(path)
    assert decode_image(path).width == 4000


def test_a_table_cell_decodes_as_its_photo_and_a_bad_cell_has_a_reason(tmp_path, photo_paths):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cells = [photo_paths[0].read_bytes(), None]
    pq.write_table(pa.table({"image": pa.array(cells, pa.binary())}), tmp_path / "t.parquet")
    decoded = decode_image(f"{tmp_path}/t.parquet/image/000000000")
    assert decoded.image.size == decode_image(photo_paths[0]).image.size
    assert decoded.bytes == len(cells[0]) and decoded.mtime == (tmp_path / "t.parquet").stat().st_mtime
    with pytest.raises(BadImageError, match="^empty image cell$"):
        decode_image(f"{tmp_path}/t.parquet/image/000000001")


def test_an_object_at_a_url_decodes_as_its_file_with_the_object_s_time(photo_paths):
    import uuid

    from msfkit.data.storage import locate

    url = f"memory://{uuid.uuid4().hex}/a.jpg"
    locate(url).write_bytes(photo_paths[0].read_bytes())
    got, expected = decode_image(url), decode_image(photo_paths[0])
    assert got.image.tobytes() == expected.image.tobytes() and got.bytes == expected.bytes
    assert got.mtime == locate(url).modified() and got.mtime_ns == int(got.mtime * 1_000_000_000)
    with pytest.raises(BadImageError, match="^no such object$"):
        decode_image(f"{url}.gone")
