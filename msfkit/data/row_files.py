"""Reading a stored row's file only while it is the file that was embedded, inside its source.

    f = RowFile(root="/data", rel="cats/a.jpg", bytes=51234, mtime=1.7e9, mtime_ns=1_700_000_000_123456789)
    read_row_file(f)      # its bytes; UnsafePath with a one-line reason otherwise
    check_row_file(f)     # the same checks without reading (a cache of what was read before)

The path is checked by name (`msfkit.data.paths.row_paths`), then resolved with its symlinks and
required to lie under the resolved source root (a tar member: its archive); the file is opened
without following a last symlink, and its size and modification time (`mtime_ns`, or `mtime` for
shards written before that column) must be the ones the metadata holds. So a symlink swapped in
after indexing, a manifest edited to point elsewhere, or a file replaced since, is never read in the
embedded file's place. `msfkit serve` sends and draws rows only through here.

A store embedded from object storage has a URL source root (`s3://bucket/photos`): a row's object
is `ROOT/rel` (the name checked the same way; an object store has no links to follow), read through
fsspec, and compared by its size and last-modified time as a file is.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from msfkit.data.archives import read_member, split_member
from msfkit.data.paths import UnsafePath, row_paths
from msfkit.data.remote import open_url
from msfkit.data.storage import is_url
from msfkit.models.errors import MsfkitError


@dataclass(frozen=True)
class RowFile:
    """A stored row's file: its source root and relative path, and the facts its metadata recorded."""

    root: str | None  # the store's source root (absolute)
    rel: str  # '/'-separated, relative to `root`; may name a tar member (`shard.tar/a.jpg`)
    bytes: int
    mtime: float
    mtime_ns: int | None  # None in shards written before the column: `mtime` is compared instead


def read_row_file(f: RowFile) -> bytes:
    """The bytes of a row's file (or tar member), read only while it resolves under `f.root` and its
    size and mtime are the ones recorded; `UnsafePath` with a one-line reason otherwise."""
    target, member = _locate(f)
    if member is None and is_url(target):
        return _read_object(f, target, read=True)
    if member is not None:
        data, mtime = _read_member(target, member, f)
        _check_same(f, len(data), int(mtime * 1_000_000_000), mtime)
        return data
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnsafePath(f"{f.rel}: the file is gone") from None
    except OSError as e:  # ELOOP: a symlink swapped in since it was resolved
        raise UnsafePath(f"{f.rel}: cannot be opened ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as fh:
        _check_stat(f, os.fstat(fh.fileno()))
        return fh.read()


def check_row_file(f: RowFile) -> None:
    """`read_row_file`'s checks without reading the file (for a cache that holds what was read before)."""
    target, member = _locate(f)
    if member is None and is_url(target):
        _read_object(f, target, read=False)
        return
    if member is not None:
        data, mtime = _read_member(target, member, f)
        _check_same(f, len(data), int(mtime * 1_000_000_000), mtime)
        return
    try:
        st = os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        raise UnsafePath(f"{f.rel}: the file is gone") from None
    except OSError as e:
        raise UnsafePath(f"{f.rel}: cannot be read ({e.strerror or e})") from None
    _check_stat(f, st)


def _locate(f: RowFile) -> tuple[str, str | None]:
    """(resolved file, None) or (resolved archive, member name); refused unless it lies under the root."""
    (path,) = row_paths(f.root, [f.rel], f.rel)
    if is_url(path):  # ROOT/rel with rel checked by name: an object store has no links out of ROOT
        member = split_member(path)
        return (str(member[0]), member[1]) if member is not None else (str(path), None)
    member = split_member(path)
    target = os.path.realpath(member[0] if member is not None else path)
    root = os.path.realpath(f.root)
    if not Path(target).is_relative_to(root):
        raise UnsafePath(f"{f.rel}: resolves outside the source root {f.root} (a symlink points out of it)")
    return target, (member[1] if member is not None else None)


def _read_object(f: RowFile, url: str, *, read: bool) -> bytes | None:
    """The object's bytes (`read`) or only its facts, checked against the row's metadata."""
    where = open_url(url)
    try:
        data = where.read_bytes() if read else None
        size = len(data) if data is not None else where.size()
        mtime = where.modified()
    except FileNotFoundError:
        raise UnsafePath(f"{f.rel}: the object is gone") from None
    except MsfkitError as e:
        raise UnsafePath(f"{f.rel}: cannot be read ({e})") from None
    _check_same(f, size, int(mtime * 1_000_000_000), mtime)
    return data


def _read_member(archive: str, name: str, f: RowFile) -> tuple[bytes, float]:
    try:
        return read_member(archive if is_url(archive) else Path(archive), name)
    except (OSError, MsfkitError) as e:
        raise UnsafePath(f"{f.rel}: cannot be read from its archive ({e})") from None


def _check_stat(f: RowFile, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath(f"{f.rel}: not a regular file any more")
    _check_same(f, st.st_size, st.st_mtime_ns, st.st_mtime)


def _check_same(f: RowFile, size: int, mtime_ns: int, mtime: float) -> None:
    same_time = mtime_ns == f.mtime_ns if f.mtime_ns is not None else mtime == f.mtime
    if size != f.bytes or not same_time:
        raise UnsafePath(f"{f.rel}: changed since it was embedded (size or modification time differs)")
