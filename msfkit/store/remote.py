"""Embedding stores at a URL (`s3://`, `gs://`, `memory://`, ...): written and read through a local copy.

    target = RemoteStore.begin("s3://bucket/store")   # locks a local staging copy, pulls the store
    ... the ordinary local run on target.root ...     # plan, embed, commit each shard
    target.push_plan(overwrite=False)                 # the run's manifest (its plan), first
    target.push_shard(3)                              # after each local commit: objects, then record
    target.push_final(); target.end()                 # errors.parquet, then the final manifest

    open_remote("s3://bucket/store")                  # a local read copy of its committed state

All embedding logic stays the local logic; a URL adds two things around it. Before planning, the
run pulls the store's committed state into a staging copy in msfkit's cache (`msfkit.store.pull`);
each shard committed locally is then pushed as whole objects and committed by its record
(`msfkit.store.objects`). A replaced shard (changed files) is pushed under new object names
(`emb/00003.g1.npy`) before its new record, so the switch is one PUT. So a run killed at any
moment leaves the remote store readable up to its last commit record, and a rerun, on this machine
or another (its staging copy gone), continues from the remote records. Readers pull the committed
state into a read copy (`open_remote`) and open it with the local reader: they see committed shards
only. One writer at a time per store URL: the staging copy is locked on this machine; two machines
writing one URL at once are not told apart (use `--shard i/n`: each part is a store of its own).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from msfkit.data.storage import Location, locate, protocol
from msfkit.models.errors import MsfkitError
from msfkit.sizes import url_cache_dir
from msfkit.store import writer
from msfkit.store.format import ERRORS, MANIFEST, PART_NAME, STORE_ENTRIES
from msfkit.store.objects import COMMITS, commit_shard
from msfkit.store.pull import SHARD_FILES, LocalCopy, pull_store
from msfkit.store.shards import shard_info

_BUCKETS = ("s3", "s3a", "gs", "gcs", "az", "abfs")  # protocols whose first path part is a bucket


@dataclass(frozen=True)
class RemoteStore:
    """A store at a URL being written by this process through its locked local staging copy."""

    target: Location
    folder: Path  # the staging folder (locked): the copy's store/ and book/

    @property
    def copy(self) -> LocalCopy:
        return LocalCopy(self.folder / "store", self.folder / "book")

    @property
    def root(self) -> Path:
        """The local store folder the run writes (plans, embeds and commits in)."""
        return self.copy.root

    @classmethod
    def begin(cls, url: str, overwrite: bool = False) -> RemoteStore:
        """Lock the staging copy of the store at `url` and pull its committed state into it (none
        with `overwrite`: the run replaces it). A prefix that holds objects but no store, or a
        missing bucket, is one line; nothing is written there."""
        target = locate(url)
        store = cls(target, _written(target).root.parent)
        store.folder.mkdir(parents=True, exist_ok=True)
        try:
            writer.lock(store.folder)
        except MsfkitError:
            raise MsfkitError(f"{url} is being written by another msfkit embed here; let it finish") from None
        try:
            if overwrite:
                store.copy.clear()
                present = target.child(MANIFEST).exists()
            else:  # (no credentials, no endpoint: one line here, before any work)
                present = pull_store(target, store.copy) is not None
            if not present:
                if target.listdir():
                    raise MsfkitError(f"{url}: holds objects but no embedding store; choose another -o")
                _check_bucket(target)
        except BaseException:
            store.end()
            raise
        return store

    @contextmanager
    def named(self) -> Iterator[None]:
        """Errors about the staging copy (a store of another model, say) name the store's URL."""
        try:
            yield
        except MsfkitError as e:
            raise MsfkitError(str(e).replace(str(self.root), self.target.url)) from None

    def push_plan(self, overwrite: bool) -> None:
        """Put the run's manifest (its plan, before any shard); with `overwrite`, first remove the
        store that was there (its records first, so readers never see a half-removed store)."""
        if overwrite:
            _remove_store(self.target)
            shutil.rmtree(self.copy.book, ignore_errors=True)
        self._push_file(MANIFEST)

    def push_shard(self, k: int) -> None:
        """Push local shard `k`: its objects (named for its generation), then its commit record."""
        entry = shard_info(self.root, k)
        suffix = f".g{entry.generation}" if entry.generation else ""
        objects = {
            f"{kind}/{entry.name}{suffix}{ext}": (self.root / kind / f"{entry.name}{ext}").read_bytes()
            for kind, ext in SHARD_FILES.items()
        }
        self.copy.note(k, commit_shard(self.target, entry.to_dict(), objects))

    def push_final(self) -> None:
        """Put errors.parquet, then the final manifest (the store is complete)."""
        self._push_file(ERRORS)
        self._push_file(MANIFEST)

    def end(self) -> None:
        """Release the staging copy's lock."""
        writer.unlock(self.folder)

    def _push_file(self, name: str) -> None:
        self.target.child(name).write_bytes((self.root / name).read_bytes())


def open_remote(url: str) -> Path:
    """A local read copy of the store at `url`, or a folder of read copies of its `--shard` parts,
    holding its committed state; fetched again only where a commit record changed since last time."""
    source = locate(url)
    folder = url_cache_dir("stores", source.url, "read")
    with _held(folder):
        if pull_store(source, LocalCopy(folder / "store", folder / "book"), _written(source)) is not None:
            return folder / "store"
        names = [n for n in source.listdir() if PART_NAME.match(n)]
        copies = {n: LocalCopy(folder / "parts" / n, folder / "books" / n) for n in names}
        pulled = [
            n for n, copy in copies.items() if pull_store(source.child(n), copy, _written(source.child(n)))
        ]
        if not pulled:
            raise MsfkitError(f"{url}: not an embedding store (no {MANIFEST}, and no part of one)")
        for gone in set(os.listdir(folder / "parts")) - set(pulled):
            LocalCopy(folder / "parts" / gone, folder / "books" / gone).clear()
    return folder / "parts"


def is_remote_store(url: str) -> bool:
    """Whether `url` holds a store, or `--shard` parts of one (a manifest object there)."""
    source = locate(url)
    if source.child(MANIFEST).exists():
        return True
    return any(PART_NAME.match(n) and source.child(n, MANIFEST).exists() for n in source.listdir())


def _remove_store(target: Location) -> None:
    """Delete the store at `target`: its commit records first, then its other objects; a prefix
    holding anything a store does not hold is refused untouched."""
    names = target.listdir()
    foreign = sorted(set(names) - STORE_ENTRIES - {COMMITS})
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise MsfkitError(f"{target.url}: holds objects that are not a store's ({shown}); left untouched")
    for name in sorted(names, key=lambda n: (n != COMMITS, n == MANIFEST)):
        target.child(name).remove()


def _check_bucket(target: Location) -> None:
    if protocol(target.url) not in _BUCKETS:
        return
    bucket = target.path.split("/", 1)[0]
    if not Location(target.fs, bucket, f"{protocol(target.url)}://{bucket}").exists():
        raise MsfkitError(f"{target.url}: no bucket {bucket} (create it first)")


def _written(source: Location) -> LocalCopy:
    """This machine's staging copy of the store at `source` (maybe empty): a read copy links the
    shards it holds instead of downloading them again."""
    folder = url_cache_dir("stores", source.url, "write")
    return LocalCopy(folder / "store", folder / "book")


@contextmanager
def _held(folder: Path) -> Iterator[None]:
    """Hold the read copy's lock (waiting for another reader of the same URL on this machine)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
