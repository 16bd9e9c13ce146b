"""The files the server reads and writes: a row's image bytes, its cached thumbnail, uploaded images.

Every file read is a row of the index's stores, found by row number (`Rows.path`); the only
folder written is `cache` (thumbnails, and each upload for the moment it is decoded).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING

from msfkit.models.files import atomic_write
from msfkit.serve.errors import NotFound, Refused

if TYPE_CHECKING:
    from PIL import Image

    from msfkit.serve.backend import Backend

THUMB_SIZES = range(32, 513)  # longest side in pixels
THUMB_QUALITY = 85


def image_bytes(backend: Backend, row: int) -> tuple[bytes | Path, str]:
    """(the file, or a tar member's bytes; its media type) of an indexed row."""
    from msfkit.data.archives import read_member, split_member

    path = Path(backend.rows.path(row))
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.is_file():
        return path, kind
    member = split_member(path)
    if member is not None:
        try:
            return read_member(*member)[0], kind
        except OSError:
            pass
    raise NotFound(f"row {row}: its file {path} is gone")


def thumbnail(backend: Backend, row: int, size: int, cache: Path) -> Path:
    """A JPEG of the row's image with its longest side `size` (made once, then read from `cache`).

    The cache file is named by the file's path, size on disk and mtime, so a changed file gets a
    new thumbnail. Fitted as the contact sheets' tiles are (`msfkit.retrieval.render.fit_image`):
    photos shrink, tiny images (a 28 px digit) grow with sharp pixels."""
    from msfkit.data.images import BadImageError, load_image
    from msfkit.retrieval.render import fit_image

    if size not in THUMB_SIZES:
        raise Refused(f"thumbnail size {size}: between {THUMB_SIZES.start} and {THUMB_SIZES.stop - 1}")
    path = backend.rows.path(row)
    try:
        st = os.stat(path)
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "member"  # a tar member: its archive's own stat is checked when it is read
    name = hashlib.sha256(f"{path}\0{stamp}\0{size}".encode()).hexdigest()[:24]
    out = cache / name[:2] / f"{name}.jpg"
    if out.is_file():
        return out
    try:
        im = load_image(path, draft_size=size)
    except BadImageError as e:
        raise NotFound(f"row {row}: {path}: {e}") from None
    im = fit_image(im, size)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: im.save(tmp, format="JPEG", quality=THUMB_QUALITY))
    return out


def decode_upload(data: bytes, name: str, backend: Backend) -> Image.Image:
    """An uploaded file as `msfkit embed` read the index's images (`msfkit.data.images.decode_image`:
    the pixel limit checked from the header before decoding, EXIF orientation, RGB, JPEG draft
    decoding when the collection had it); a `Refused` that says why otherwise."""
    from msfkit.data.images import BadImageError, decode_image

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
