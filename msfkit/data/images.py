"""Reading one image file safely: every way a file can be bad becomes a `BadImageError` with a short reason.

    img = load_image("cat.jpg")                     # 8-bit RGB, EXIF orientation applied
    img = load_image("big.jpg", draft_size=256)     # JPEG decoded at 1/2, 1/4 or 1/8 scale when that
                                                    # still leaves the shorter side >= 256 px

The checks run cheapest first: the path (missing, broken symlink, not a file), the size on disk
(zero bytes), the header (not an image; more pixels than `max_pixels`, refused before any pixel
is decoded, so a decompression bomb costs no memory), then the full decode (truncated, corrupt).
Any shape is read: a 4000 x 12 strip costs its pixels, and preprocessing resizes only the region its
centre crop keeps (`msfkit.models.preprocess.Preprocess.crop`), so memory stays bounded there too.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from msfkit.data.archives import MemberError, read_member, split_member
from msfkit.data.cells import CellError, read_cell, split_cell
from msfkit.data.paths import name_problem, refused_entry
from msfkit.data.remote import open_url, read_image
from msfkit.data.storage import is_remote
from msfkit.models.errors import MsfkitError
from msfkit.models.preprocess import to_rgb

# Pillow's own warning threshold (~89 MP, a 9459 x 9459 image): far above any camera photo.
DEFAULT_MAX_PIXELS = 89_478_485
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_EXIF_ORIENTATION = 0x0112


class BadImageError(MsfkitError):
    """A file that cannot be embedded; the message is a short reason ("zero bytes", "truncated: ...")."""


@dataclass
class DecodedImage:
    """An image as msfkit embeds it, with the facts the embedding store records about its file."""

    image: Image.Image  # 8-bit RGB, upright
    width: int  # full-resolution size as displayed (after EXIF orientation), even when draft-decoded
    height: int
    bytes: int  # size of the file on disk
    mtime: float  # seconds since the epoch
    mtime_ns: int  # the same in integer nanoseconds (os.stat's st_mtime_ns), exact


def load_image(
    path: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
) -> Image.Image:
    """The image at `path` as upright 8-bit RGB (see `msfkit.models.to_rgb`); raises `BadImageError`.

    `draft_size`: let the JPEG decoder scale down by 2, 4 or 8 while the shorter side stays at
    least `draft_size` pixels; much faster for photos far larger than the model's input.
    """
    return decode_image(path, max_pixels=max_pixels, draft_size=draft_size).image


def decode_image(
    path: str | os.PathLike | bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
) -> DecodedImage:
    """`load_image` plus the file's full-resolution size, byte count and mtime. `path` may also be
    a file's bytes (an upload: mtime 0), decoded under the same checks."""
    if isinstance(path, bytes):
        source, size, mtime, mtime_ns = io.BytesIO(path), len(path), 0.0, 0
    else:
        source, size, mtime, mtime_ns = _open_source(os.fspath(path))
    if size == 0:
        raise BadImageError("zero bytes")
    try:
        with warnings.catch_warnings():
            # Pillow warns above ~89 MP and raises above ~179 MP; our own limit is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                width, height = _display_size(im)
                if width * height > max_pixels:
                    raise BadImageError(_bomb_reason(width, height, max_pixels))
                if draft_size is not None and im.format == "JPEG":
                    im.draft(None, (draft_size, draft_size))
                im.load()
                rgb = to_rgb(im)
                if rgb is im:  # to_rgb may hand back its input, which closes with the `with`
                    rgb = im.copy()
    except BadImageError:
        raise
    except Image.DecompressionBombError as e:  # Pillow's own hard limit (~179 MP), hit inside open()
        m = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{int(m[1]):,} pixels" if m else "too many pixels"
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
        raise BadImageError(f"decompression bomb refused: {pixels} > limit {limit:,}") from None
    except UnidentifiedImageError:
        raise BadImageError(f"not an image ({_kind(source)})") from None
    except PermissionError:
        raise BadImageError("unreadable: permission denied") from None
    except OSError as e:
        text = _first_line(e)
        if "truncated" in text or "broken data stream" in text or "premature end" in text.lower():
            raise BadImageError(f"truncated: {text}") from None
        raise BadImageError(f"corrupt: {text}") from None
    except Exception as e:  # a decoder may raise anything (SyntaxError, ValueError, struct.error, ...)
        raise BadImageError(f"corrupt: {type(e).__name__}: {_first_line(e)}") from None
    return DecodedImage(rgb, width, height, size, mtime, mtime_ns)


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) of every format Pillow can open."""
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def _open_source(text: str):
    """(what Image.open reads: the path, or a member's bytes; byte count; mtime; mtime in ns).

    A path that does not exist may name a tar member (`ARCHIVE.tar/member`), or an entry of a path
    list that listing refused (`LIST.txt/../x.jpg`, see `msfkit.data.paths`): the string is split
    as given, before `Path` would fold a `//` or `..` in the name."""
    path = Path(text)
    if not path.exists() and not path.is_symlink():
        cell = split_cell(text)  # TABLE.parquet/COLUMN/ROW: an image held in a table
        if cell is not None:
            try:
                data, mtime = read_cell(*cell)
            except CellError as e:
                raise BadImageError(str(e)) from None
            return io.BytesIO(data), len(data), mtime, int(mtime * 1_000_000_000)
        member = split_member(text)
        if member is not None:
            try:
                data, mtime = read_member(*member)
            except MemberError as e:
                raise BadImageError(str(e)) from None
            except FileNotFoundError:
                raise BadImageError("no such member in the archive") from None
            except OSError as e:
                raise BadImageError(f"unreadable archive: {e.strerror or _first_line(e)}") from None
            return io.BytesIO(data), len(data), mtime, int(mtime * 1_000_000_000)
        if is_remote(text):  # an object in object storage (s3://...): read whole, never copied to disk
            return _read_object(text)
        refused = refused_entry(text)
        if refused is not None:
            listed, entry = refused
            why = name_problem(entry) or "not a path of its own"
            raise BadImageError(f"unsafe path in the list {Path(listed).name}: {why}")
    st = _stat(path)
    return path, st.st_size, st.st_mtime, st.st_mtime_ns


def _read_object(url: str):
    """(the object's bytes, byte count, last-modified time, the same in ns): see `_open_source`."""
    try:
        data, mtime = read_image(open_url(url))
    except FileNotFoundError:
        raise BadImageError("no such object") from None
    except MsfkitError as e:  # the storage's own failure, already one line naming the URL
        raise BadImageError(f"unreadable object: {e}") from None
    return io.BytesIO(data), len(data), mtime, int(mtime * 1_000_000_000)


def _stat(path: Path) -> os.stat_result:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BadImageError("broken symlink" if path.is_symlink() else "no such file") from None
    except PermissionError:
        raise BadImageError("unreadable: permission denied") from None
    except OSError as e:
        raise BadImageError(f"unreadable: {e.strerror or _first_line(e)}") from None
    if stat.S_ISDIR(st.st_mode) and not _listable(path):  # a sub-folder the listing could not read
        raise BadImageError("unreadable folder")
    if not stat.S_ISREG(st.st_mode):
        raise BadImageError("unreadable: not a regular file")
    return st


def _listable(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            next(entries, None)
    except OSError:
        return False
    return True


def _display_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) from the header, swapped when the EXIF orientation turns the image."""
    width, height = im.size
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # a broken EXIF block is not worth refusing the image for
        orientation = None
    return (height, width) if orientation in _TRANSPOSED_ORIENTATIONS else (width, height)


def _bomb_reason(width: int, height: int, max_pixels: int) -> str:
    return f"decompression bomb refused: {width}x{height} = {width * height:,} pixels > limit {max_pixels:,}"


def _kind(source: Path | io.BytesIO) -> str:
    """A hint at what a non-image file (a path, or bytes read already) is, from its first bytes."""
    try:
        if isinstance(source, io.BytesIO):
            head = source.getvalue()[:512]
        else:
            with open(source, "rb") as f:
                head = f.read(512)
    except OSError:
        return "unreadable header"
    try:
        head.decode("utf-8")
        return "text file"
    except UnicodeDecodeError:
        return "unknown format"


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
