"""Image files of every kind that can go wrong, written for the tests (shared by data and embedding tests)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

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
