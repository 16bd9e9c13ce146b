"""A store in object storage copied into a local folder: its manifest and its committed shards only.

    pull_store(locate("s3://bucket/store"), copy)   # copy.root now holds what the store has committed

A store at a URL (`msfkit.store.objects`: each shard's objects, then its commit record) is read, and
continued by `msfkit embed`, through a local copy that the ordinary local reader and writer use. The
copy is a store folder (`root`) and, beside it, a book (`book/NNNNN.json`) of what it holds: the
commit record each local shard came from, and each of the shard's local files' size and mtime_ns
as written. Pulling again fetches only the shards whose record changed, or whose local files are
not the ones written (a replacement a killed run made here and never pushed), and removes the local
shards that have no record (never committed, or a store replaced since). Every fetched object is
checked against the size its record lists: a missing or short one is one line (damaged).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msfkit.data.storage import Location
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write
from msfkit.store.format import ERRORS, MANIFEST, Manifest, shard_name
from msfkit.store.objects import read_commits, read_object
from msfkit.store.shards import committed_shards

# a shard's objects by their first name part, and the local file each becomes; meta written last
SHARD_FILES = {"emb": ".npy", "errors": ".parquet", "meta": ".parquet"}


@dataclass(frozen=True)
class LocalCopy:
    """A local store folder and the book of the commit records its shards came from."""

    root: Path  # the store folder the local reader and writer use
    book: Path  # NNNNN.json per local shard

    def note(self, k: int, record: dict[str, Any]) -> None:
        """Record that local shard `k` is the shard of `record` (after pulling or pushing it)."""
        files = {local: _stat(self.root / local) for local in local_names(k, record).values()}
        self.book.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"record": record, "files": files}, sort_keys=True)
        atomic_write(self.book / f"{shard_name(k)}.json", lambda p: p.write_text(text))

    def clear(self) -> None:
        """Empty the copy (a store that is no longer there, or is being replaced)."""
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.book, ignore_errors=True)


def pull_store(source: Location, copy: LocalCopy, donor: LocalCopy | None = None) -> Manifest | None:
    """Make `copy` hold exactly the committed state of the store at `source` (see the module
    docstring); its manifest, or None when `source` holds no store (the copy is then empty).
    `donor`, another copy of the same store on this machine (the one a run writes through): its
    shards that are the committed ones are linked from there instead of downloaded."""
    try:
        manifest_bytes = source.child(MANIFEST).read_bytes()
    except FileNotFoundError:
        copy.clear()
        return None
    manifest = _checked(manifest_bytes, source.child(MANIFEST).url)
    records = read_commits(source)
    copy.root.mkdir(parents=True, exist_ok=True)
    for k in _held(copy) - set(records):
        _drop(copy, k)
    for k, record in sorted(records.items()):
        if not _current(copy, k, record) and not _borrow(donor, copy, k, record):
            _fetch(source, copy, k, record)
    errors = copy.root / ERRORS
    data = _read_or_none(source.child(ERRORS)) if manifest.complete else None
    if data is None:
        errors.unlink(missing_ok=True)
    else:
        atomic_write(errors, lambda p: p.write_bytes(data))
    atomic_write(copy.root / MANIFEST, lambda p: p.write_bytes(manifest_bytes))
    return manifest


def local_names(k: int, record: dict[str, Any]) -> dict[str, str]:
    """{object name: local file name} of shard `k`'s objects, meta last; a record that does not list
    exactly one emb, errors and meta object is one line (damaged)."""
    by_kind: dict[str, str] = {}
    for name in record["objects"]:
        kind = name.split("/", 1)[0]
        if kind not in SHARD_FILES or kind in by_kind:
            raise MsfkitError(f"commit record {shard_name(k)} lists {name}; the store is damaged")
        by_kind[kind] = name
    if len(by_kind) != len(SHARD_FILES):
        raise MsfkitError(f"commit record {shard_name(k)} lacks a shard object; the store is damaged")
    return {by_kind[kind]: f"{kind}/{shard_name(k)}{suffix}" for kind, suffix in SHARD_FILES.items()}


def _checked(manifest_bytes: bytes, url: str) -> Manifest:
    try:
        data = json.loads(manifest_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MsfkitError(f"{url}: unreadable manifest ({e})") from None
    return Manifest.from_dict(data, url)


def _held(copy: LocalCopy) -> set[int]:
    """The shards the copy holds files or a book entry of."""
    noted = {int(p.stem) for p in copy.book.glob("*.json") if p.stem.isdigit()}
    return set(committed_shards(copy.root)) | noted


def _noted(copy: LocalCopy, k: int, record: dict[str, Any]) -> dict[str, Any] | None:
    """The (size, mtime_ns) noted for local shard `k`'s files, if the book says it is `record`'s."""
    try:
        held = json.loads((copy.book / f"{shard_name(k)}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(held, dict) or held.get("record") != record:
        return None
    return held.get("files") or {}


def _current(copy: LocalCopy, k: int, record: dict[str, Any]) -> bool:
    """Whether local shard `k` is the shard of `record`, with the files written for it."""
    files = _noted(copy, k, record)
    names = local_names(k, record).values()
    return files is not None and all(_stat(copy.root / local) == files.get(local) for local in names)


def _borrow(donor: LocalCopy | None, copy: LocalCopy, k: int, record: dict[str, Any]) -> bool:
    """Hard-link shard `k`'s files from `donor` when it holds the shard of `record` (files are only
    ever replaced by a rename, so a link keeps the bytes it was made to); whether it did."""
    files = _noted(donor, k, record) if donor is not None else None
    if files is None:
        return False
    _drop(copy, k)
    names = local_names(k, record).values()
    for local in names:
        (copy.root / local).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(donor.root / local, copy.root / local)
        except OSError:  # gone since, or another filesystem: download it
            return False
    if not all(_stat(copy.root / local) == files.get(local) for local in names):
        return False  # the donor's shard changed under us
    copy.note(k, record)
    return True


def _fetch(source: Location, copy: LocalCopy, k: int, record: dict[str, Any]) -> None:
    """Fetch shard `k`'s objects into the copy, each checked against its recorded size."""
    _drop(copy, k)
    for name, local in local_names(k, record).items():
        try:
            data = read_object(source, name)
        except FileNotFoundError:
            data = None
        size = record["objects"][name]
        if data is None or len(data) != size:
            held = "is missing" if data is None else f"has {len(data)} bytes, its commit record says {size}"
            raise MsfkitError(
                f"{source.child(name).url} {held}; the store is damaged (embed it again with --force)"
            )
        path = copy.root / local
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p, data=data: p.write_bytes(data))
    copy.note(k, record)


def _drop(copy: LocalCopy, k: int) -> None:
    """Remove local shard `k` (its meta file first: the shard is then no longer committed here)."""
    (copy.book / f"{shard_name(k)}.json").unlink(missing_ok=True)
    for kind in ("meta", "emb", "errors"):
        (copy.root / kind / f"{shard_name(k)}{SHARD_FILES[kind]}").unlink(missing_ok=True)


def _read_or_none(where: Location) -> bytes | None:
    try:
        return where.read_bytes()
    except FileNotFoundError:
        return None


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]
