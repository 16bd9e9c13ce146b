"""Images inside tar archives and webdataset shards, read member by member without extracting.

A member is named by the archive's path and the member's name joined by `/`, as if the archive
were a folder: `shards/train-0001.tar/n0144/img_7.jpg`. Every msfkit path that opens an image
(embedding, search results, contact sheets) reads such a name from the archive, so a store made
from shards keeps working as long as the shards stay where they were. Resuming an embedding run
works member by member, as for files.

    archives("shards/train-{0000..0009}.tar")     # brace lists and ranges, as webdataset writes them
    members("train-0001.tar")                     # [(name, label)]: image members, sorted
    read_member(Path("train-0001.tar"), "a.jpg")  # (bytes, mtime)
    read_member("s3://bucket/train-0001.tar", "a.jpg")   # the same, by one range request

An archive may be a URL (`s3://bucket/shards/train-{0000..0009}.tar`): it is streamed, never copied
to the local disk. Listing walks its headers through an fsspec file object (seeking over the data,
so each request reads ahead one block of headers), and a member is read by offset with one range
request. A rewritten archive (another size or version) is indexed again.

Only plain tar is read (random access by offset, no decompression pass per image). A webdataset
sample's label is its `KEY.cls` member (text), when there is one. Compressed tars, zip, 7z and
rar are refused in one line that says so, and so is a tar that ends early (inside a member's data or
header, or without its end-of-archive blocks): it is never read as a shorter complete archive.

Member names are data from strangers (`msfkit.data.paths`): `./a.jpg` is listed as `a.jpg`; a name
that is absolute or has a `..` part is listed as it is and reads as `MemberError("unsafe member
name ...")`, an error row like any unreadable member, never as a file outside the archive. A hard
link reads as the earlier member it links to; a symbolic link member is an error row (not followed).
"""

from __future__ import annotations

import os
import re
import tarfile
from functools import lru_cache
from pathlib import Path

from msfkit.data.paths import clean_name, name_problem
from msfkit.data.remote import open_url
from msfkit.data.storage import Location, is_url, storage_errors
from msfkit.models.errors import MsfkitError

ARCHIVE_SUFFIXES = (".tar",)
UNREADABLE = {
    ".tar.gz": "a gzip-compressed tar", ".tgz": "a gzip-compressed tar", ".tar.bz2": "a bzip2-compressed tar",
    ".tar.xz": "an xz-compressed tar", ".tar.zst": "a zstd-compressed tar", ".zip": "a zip archive",
    ".7z": "a 7z archive", ".rar": "a rar archive",
}  # fmt: skip
_BRACES = re.compile(r"\{([^{}]*)\}")
_BLOCK = tarfile.BLOCKSIZE
_READ_AHEAD = 2**20  # bytes fetched per request while a remote archive's headers are walked


class MemberError(MsfkitError):
    """A listed member that cannot be read (an unsafe name, a dangling link); the message says why."""


def is_archive(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def refuse_unreadable(path: str | os.PathLike) -> None:
    """One honest line for an archive type msfkit does not read."""
    lower = str(path).lower()
    for suffix, what in UNREADABLE.items():
        if lower.endswith(suffix):
            raise MsfkitError(f"{path}: {what}, which msfkit does not read; extract it, or repack as .tar")


def archives(spec: str) -> list[str]:
    """`spec` with `{a,b}` lists and `{000..009}` ranges expanded, in order (a plain path: itself)."""
    m = _BRACES.search(spec)
    if m is None:
        return [spec]
    body, head, tail = m[1], spec[: m.start()], spec[m.end() :]
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi, width = int(rng[1]), int(rng[2]), len(rng[1])
        choices = [str(i).zfill(width) for i in range(lo, hi + 1)]
    else:
        choices = body.split(",")
    return [out for c in choices for out in archives(head + c + tail)]


def members(archive: str | os.PathLike, extensions: frozenset[str]) -> list[tuple[str, str | None]]:
    """(member name, label or None) of the image members of a tar, sorted by name."""
    try:
        index = _index(os.fspath(archive), _stamp(archive))
    except FileNotFoundError:
        raise MsfkitError(f"{archive}: no such archive") from None
    labels = {}
    for name, entry in index.items():
        if name.endswith(".cls") and not isinstance(entry, str):
            text = read_member(archive, name)[0].decode("utf-8", "replace")
            labels[name[: -len(".cls")]] = text.strip()
    found = []
    for name in sorted(index):
        stem, ext = os.path.splitext(name)
        if ext.lower() in extensions and not os.path.basename(name).startswith("."):
            found.append((name, labels.get(stem) or None))
    return found


def split_member(path: str | os.PathLike) -> tuple[Path | str, str] | None:
    """(archive, member name) when `path` names a member of a tar archive (a file on disk, or an
    object at a URL: the archive is then its URL), else None."""
    text = os.fspath(path)
    marker = text.lower().find(".tar/")
    while marker != -1:
        archive = text[: marker + 4]
        if _is_archive_file(archive):
            return archive if is_url(archive) else Path(archive), text[marker + 5 :]
        marker = text.lower().find(".tar/", marker + 1)
    return None


def read_member(archive: str | os.PathLike, name: str) -> tuple[bytes, float]:
    """(the member's bytes, its mtime); a member the archive does not hold is FileNotFoundError, one
    it holds but cannot be read (an unsafe name, a dangling link) a `MemberError` saying why."""
    index = _index(os.fspath(archive), _stamp(archive))
    if name not in index:
        raise FileNotFoundError(f"{archive} holds no member {name}")
    if isinstance(index[name], str):
        raise MemberError(index[name])
    offset, size, mtime = index[name]
    return _read_range(os.fspath(archive), offset, size), mtime


def _where(archive: str) -> Location:
    """The archive at a URL, through this process's filesystem for its protocol (one connection for
    every member read, `msfkit.data.remote.open_url`)."""
    return open_url(archive)


def _is_archive_file(archive: str) -> bool:
    if not is_url(archive):
        return os.path.isfile(archive)
    where = _where(archive)
    try:
        with storage_errors(where.url):
            return bool(where.fs.isfile(where.path))
    except MsfkitError:  # storage that cannot be reached: read as an object, which says why
        return False


def _stamp(archive: str | os.PathLike) -> tuple:
    """What changes when the archive is rewritten: its mtime on disk; an object's size and version."""
    if not is_url(archive):
        return (os.stat(archive).st_mtime,)
    where = _where(os.fspath(archive))
    with storage_errors(where.url):
        where.fs.invalidate_cache(where.path)
        info = where.fs.info(where.path)
    version = next((info[k] for k in ("ETag", "LastModified", "mtime", "created") if info.get(k)), None)
    return (info.get("size"), str(version))


def _read_range(archive: str, offset: int, size: int) -> bytes:
    """`size` bytes of the archive from `offset`: a seek on disk, one range request at a URL."""
    if is_url(archive):
        where = _where(archive)
        with storage_errors(where.url):
            return where.fs.cat_file(where.path, start=offset, end=offset + size)
    with open(archive, "rb") as f:
        f.seek(offset)
        return f.read(size)


@lru_cache(maxsize=16)
def _index(archive: str, stamp: tuple) -> dict[str, tuple[int, int, float] | str]:
    """member name -> (data offset, size, mtime), or the reason it cannot be read, for the file-like
    members of a plain tar (headers only); a tar that ends early is an error."""
    del stamp  # part of the cache key: a rewritten archive is indexed again
    index: dict[str, tuple[int, int, float] | str] = {}
    try:
        with _open_stream(archive) as f, tarfile.open(fileobj=f, mode="r:") as tar:
            count = 0
            for m in tar:
                count += 1
                entry = _entry(m, index)
                if entry is not None:
                    index[entry[0]] = entry[1]
            _check_end(archive, f, tar.offset, count)
    except tarfile.ReadError as e:
        raise MsfkitError(f"{archive}: not a plain tar archive msfkit can read ({e})") from None
    return index


def _open_stream(archive: str):
    """The archive as a seekable binary file: on disk, or an fsspec file that reads ahead by ranges."""
    if not is_url(archive):
        return open(archive, "rb")
    where = _where(archive)
    with storage_errors(where.url):
        return where.fs.open(where.path, "rb", block_size=_READ_AHEAD, cache_type="readahead")


def _entry(m: tarfile.TarInfo, index: dict) -> tuple[str, tuple[int, int, float] | str] | None:
    """(name, what reading it gives) of a member that may be an image; None for folders and devices."""
    if not (m.isfile() or m.islnk() or m.issym()):
        return None
    problem = name_problem(m.name)
    if problem is not None:
        return m.name, f"unsafe member name: {problem}"
    name = clean_name(m.name)
    if m.isfile():
        return name, (m.offset_data, m.size, float(m.mtime))
    if m.issym():
        return name, "a symbolic link member (not followed)"
    target = index.get(clean_name(m.linkname)) if name_problem(m.linkname) is None else None
    if target is None or isinstance(target, str):
        return name, f"a hard link to {m.linkname!r}, which is not a readable earlier member"
    return name, target


def _check_end(archive: str, f, offset: int, count: int) -> None:
    """Refuse a tar that does not end with a zero block where its last member ends: `tarfile` stops
    silently at a header cut short, missing or damaged, which would read as a shorter archive."""
    f.seek(offset)
    block = f.read(_BLOCK)
    if len(block) == _BLOCK and not block.strip(b"\0"):
        return
    if not block:
        why = f"ends after {count} members without the end-of-archive blocks"
    elif len(block) < _BLOCK:
        why = f"ends inside the header of member {count + 1}"
    else:
        why = f"has a damaged header after {count} members"
    raise MsfkitError(f"{archive}: truncated or damaged tar: it {why}; it is not read as a shorter archive")
