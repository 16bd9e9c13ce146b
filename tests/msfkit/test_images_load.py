"""load_image / decode_image: every kind of bad file gets its reason; every mode comes out RGB.

`write_bad_files` and `write_odd_images` are also used by the embed tests (same basename rule:
pytest imports this module as `test_images_load`).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msfkit.images import BadImageError, decode_image, load_image
from msfkit.models import to_rgb

# file name -> the start of the reason it must be refused with
BAD_REASONS = {
    "empty.jpg": "zero bytes",
    "truncated.jpg": "truncated",
    "notes.jpg": "not an image",
    "bomb.png": "decompression bomb refused",
    "dangling.jpg": "broken symlink",
    "garbage.png": "not an image",
}


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height 8-bit grey pixels, followed by a few bytes of data:
    decoding it would fail (or need width*height bytes); only a header check refuses it as a bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def write_bad_files(folder: Path, photo: Path) -> dict[str, str]:
    """One file of each bad kind in `folder`; returns BAD_REASONS."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    data = photo.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.jpg").write_text("these are my notes, not a photo\n")
    (folder / "bomb.png").write_bytes(png_with_header(40_000, 40_000))
    os.symlink(folder / "moved-away.jpg", folder / "dangling.jpg")
    (folder / "garbage.png").write_bytes(bytes(range(256)) * 8)
    return BAD_REASONS


def write_odd_images(folder: Path, photo: Path) -> list[str]:
    """The same photo in every awkward format and mode; returns the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.open(photo).convert("RGB").resize((96, 64))
    alpha = Image.linear_gradient("L").resize((96, 64))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    rgba.save(folder / "rgba.png")
    la = rgb.convert("L")
    la.putalpha(alpha)
    la.save(folder / "la.png")
    pal = rgb.quantize(16)
    pal.info["transparency"] = 0
    pal.save(folder / "palette.png", transparency=0)
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    grey16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    rgb.convert("1").save(folder / "bilevel.png")
    rgb.save(folder / "plain.webp")
    rgb.save(folder / "plain.bmp")
    rgb.save(folder / "plain.tiff")
    frames = [rgb.quantize(32), rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT).quantize(32)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    rgb.save(folder / "rotated.jpg", exif=exif)
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name", sorted(BAD_REASONS))
def test_each_bad_kind_is_refused_with_its_reason(tmp_path, photo_paths, name):
    reasons = write_bad_files(tmp_path, photo_paths[0])
    with pytest.raises(BadImageError) as info:
        load_image(tmp_path / name)
    assert str(info.value).startswith(reasons[name]), str(info.value)
    assert "\n" not in str(info.value)


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
