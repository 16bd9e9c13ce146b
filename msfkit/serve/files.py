"""The files the server reads and writes: a row's image bytes, its cached thumbnail, uploaded images.

Every file read is a row of the index's stores, found by row number (`Rows.path`) and read only
through `msfkit.data.row_files` (under its store's source root, and still the file embedded); the
only folder written is `cache` (thumbnails, and each upload for the moment it is decoded).
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING

from msfkit.data.images import BadImageError, decode_image
from msfkit.data.paths import UnsafePath
from msfkit.data.row_files import RowFile, check_row_file, read_row_file
from msfkit.models.files import atomic_write
from msfkit.retrieval.render import fit_image
from msfkit.serve.errors import NotFound, Refused

if TYPE_CHECKING:
    from PIL import Image

    from msfkit.serve.backend import Backend

THUMB_SIZES = range(32, 513)  # longest side in pixels
THUMB_QUALITY = 85


def row_file(backend: Backend, row: int) -> RowFile:
    """The file of an indexed row as its store recorded it: source root, path, size and mtime."""
    return backend.index.row_file(backend.rows.check(row))


def image_bytes(backend: Backend, row: int) -> tuple[bytes, str]:
    """(the bytes of an indexed row's file, or tar member; its media type), sent only while the file
    lies under its store's source root and is the one embedded (`msfkit.data.row_files`)."""
    f = row_file(backend, row)
    kind = mimetypes.guess_type(Path(f.rel).name)[0] or "application/octet-stream"
    try:
        return read_row_file(f), kind
    except UnsafePath as e:
        raise NotFound(f"row {row}: {e}") from None


def thumbnail(backend: Backend, row: int, size: int, cache: Path) -> Path:
    """A JPEG of the row's image with its longest side `size` (made once, then read from `cache`).

    The file is checked as for sending (`image_bytes`) on every request; the cache file is named by
    the row's path, size and mtime as embedded. Fitted as the contact sheets' tiles are
    (`msfkit.retrieval.render.fit_image`): photos shrink, tiny images (a 28 px digit) grow with sharp
    pixels."""
    if size not in THUMB_SIZES:
        raise Refused(f"thumbnail size {size}: between {THUMB_SIZES.start} and {THUMB_SIZES.stop - 1}")
    f = row_file(backend, row)
    stamp = f"{f.root}\0{f.rel}\0{f.bytes}:{f.mtime_ns or f.mtime}\0{size}"
    name = hashlib.sha256(stamp.encode()).hexdigest()[:24]
    out = cache / name[:2] / f"{name}.jpg"
    try:
        if out.is_file():
            check_row_file(f)
            return out
        im = decode_image(read_row_file(f), draft_size=size).image
    except (UnsafePath, BadImageError) as e:
        raise NotFound(f"row {row}: {e}") from None
    im = fit_image(im, size)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: im.save(tmp, format="JPEG", quality=THUMB_QUALITY))
    return out


def decode_upload(data: bytes, name: str, backend: Backend) -> Image.Image:
    """An uploaded file as `msfkit embed` read the index's images (`msfkit.data.images.decode_image`:
    the pixel limit checked from the header before decoding, EXIF orientation, RGB, JPEG draft
    decoding when the collection had it); a `Refused` that says why otherwise."""
    if not data:
        raise Refused(f"{name}: empty upload")
    try:
        decoded = decode_image(data, max_pixels=backend.limits.upload_pixels, draft_size=backend.draft_size)
        return decoded.image
    except BadImageError as e:
        reason = str(e)
        if reason.startswith("not an image"):
            raise Refused(f"{name}: {reason}; send a JPEG, PNG, WebP or another image", status=415) from None
        status = 413 if reason.startswith("decompression bomb") else 400  # too many pixels: 413
        raise Refused(f"{name}: {reason}", status=status) from None
