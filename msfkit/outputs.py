"""The output guard: every file or folder a command writes for its user is checked here first.

    check_output("groups.csv", force=False)              # a file: refused if it exists
    check_output("exported", force=True, kind=MODEL)     # a folder: replaced only if a model folder

Three rules, each one line of error raised before anything is written (docs/security.md):
- never inside an embedding store, an index folder or a model folder, with or without --force:
  msfkit reads those, and a file written there breaks them, or is lost when they are rebuilt;
- an existing file is replaced only with --force;
- an existing folder that is not empty is replaced only with --force, and only when it is a
  folder of the kind the command writes (a model folder: its config.json is an msfkit model config).

A URL output (`s3://bucket/index`) is judged by what its prefix holds, through
`msfkit.data.storage`: the same three rules, with a store or index recognised by its
manifest.json or index.json object. Only folders msfkit writes through fsspec (stores, indexes)
go to URLs; a file output at a URL is refused in one line rather than written to a local
`s3:/...` path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from msfkit.data.storage import Location, is_remote, local_path
from msfkit.index.folder import FILES, INDEX_FILE, INFO_FILE
from msfkit.index.writing import remote_target
from msfkit.models.catalog import describe
from msfkit.models.errors import MsfkitError
from msfkit.store.format import MANIFEST


@dataclass(frozen=True)
class Kind:
    """What a command writes: a file (`is_kind` None), or a folder that `is_kind` recognises.

    `name` reads in a sentence, article included: "an index folder"."""

    name: str
    is_kind: Callable[[Path], bool] | None = None


def is_store_folder(folder: Path) -> bool:
    """Whether `folder` is one embedding store (its manifest is an msfkit store manifest)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "format_version" in manifest and "shards" in manifest


def is_index_folder(folder: Path | str) -> bool:
    """Whether `folder` is an msfkit index folder (a URL: a prefix holding an index.json object)."""
    if is_remote(folder):
        return remote_target(folder).child(INFO_FILE).exists()
    folder = Path(local_path(folder))
    return (folder / INFO_FILE).is_file() and (folder / INDEX_FILE).is_file()


def is_model_folder(folder: Path) -> bool:
    """Whether `folder` is an msfkit model folder (not merely a folder holding some config.json)."""
    return describe(folder) is not None


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` is an `msfkit train` run folder (it holds a checkpoint or a metrics log)."""
    return (folder / "checkpoint.pt").is_file() or (folder / "metrics.csv").is_file()


def is_dataset_folder(folder: Path) -> bool:
    """Whether `folder` is what `msfkit datasets export` writes: split folders and nothing else."""
    entries = list(folder.iterdir())
    return bool(entries) and all(e.is_dir() and e.name in ("train", "test") for e in entries)


FILE = Kind("a file")
STORE = Kind("an embedding store", is_store_folder)
INDEX = Kind("an index folder", is_index_folder)
MODEL = Kind("a model folder", is_model_folder)
DATASET = Kind("a dataset folder (split folders only)", is_dataset_folder)
READ_KINDS = (STORE, INDEX, MODEL)  # the folders msfkit reads, never written into


def check_not_inside(path: str | os.PathLike) -> Path | str:
    """The first rule alone, for commands that continue their own output (embed -o, train out=):
    `path` resolved (a URL: as given), or a one-line `MsfkitError` when it lies inside a store, index
    or model folder."""
    if is_remote(path):
        _check_remote_not_inside(remote_target(path))
        return os.fspath(path)
    path = Path(local_path(path))
    where = path.resolve()
    for folder in where.parents:
        for held in READ_KINDS:
            if held.is_kind(folder):
                raise MsfkitError(
                    f"{path}: inside {held.name}, {folder}, which msfkit reads; write it elsewhere"
                )
    return where


def check_output(path: str | os.PathLike, *, force: bool = False, kind: Kind = FILE) -> Path | str:
    """`path`, absolute (a URL: as given), when the command may write a `kind` there; else a one-line
    `MsfkitError`.

    Links are followed: an output is judged by where it would land."""
    if is_remote(path):
        return _check_remote_output(os.fspath(path), force, kind)
    path = Path(local_path(path))
    where = check_not_inside(path)
    if not (path.exists() or path.is_symlink()):
        return path.absolute()
    if kind.is_kind is None:
        if where.is_dir():
            raise MsfkitError(f"{path}: is a folder; name a file")
        if not force:
            raise MsfkitError(f"{path}: already exists; remove it or pass --force")
        return path.absolute()
    for held in READ_KINDS:
        if held is not kind and held.is_kind(where):
            raise MsfkitError(f"{path}: is {held.name}, not {kind.name}; choose another output")
    if not where.is_dir():
        raise MsfkitError(f"{path}: is a file, not {kind.name}; choose another output")
    if any(where.iterdir()):
        if not force:
            raise MsfkitError(f"{path}: already exists; remove it or pass --force")
        if not kind.is_kind(where):
            raise MsfkitError(f"{path}: not {kind.name}; --force only replaces {kind.name}")
    return path.absolute()


# What marks a prefix in object storage as a folder msfkit reads, and the objects each kind holds
# (None: any, as a store's shard objects are).
_REMOTE_MARKERS = {STORE: "manifest.json", INDEX: INFO_FILE}
_REMOTE_FILES = {STORE: None, INDEX: frozenset(FILES)}


def _check_remote_not_inside(target: Location) -> None:
    """The first rule for a URL: no prefix above `target` (up to the bucket) is a store or an index."""
    parts = target.path.rstrip("/").split("/")
    for n in range(len(parts) - 1, 0, -1):
        prefix = "/".join(parts[:n])
        if not prefix.strip("/"):
            continue
        for held, marker in _REMOTE_MARKERS.items():
            if Location(target.fs, f"{prefix}/{marker}", target.url).exists():
                raise MsfkitError(
                    f"{target.url}: inside {held.name}, {prefix}, which msfkit reads; write it elsewhere"
                )


def _check_remote_output(url: str, force: bool, kind: Kind) -> str:
    """`check_output` for a URL: a prefix that holds nothing, or with `force` one that holds `kind`
    and nothing else msfkit did not write."""
    if kind not in _REMOTE_MARKERS:
        raise MsfkitError(f"{url}: msfkit writes {kind.name} to a local path only; name a local path")
    target = remote_target(url)
    _check_remote_not_inside(target)
    names = target.find()
    if not names:
        if target.exists():  # an object of that very name, not a prefix
            raise MsfkitError(f"{url}: is an object, not {kind.name}; choose another output")
        return url
    for held, marker in _REMOTE_MARKERS.items():
        if held is not kind and marker in names:
            raise MsfkitError(f"{url}: is {held.name}, not {kind.name}; choose another output")
    if not force:
        raise MsfkitError(f"{url}: already exists; remove it or pass --force")
    allowed = _REMOTE_FILES[kind]  # an index's files without index.json: an upload that was cut short
    if set(names) - allowed if allowed is not None else _REMOTE_MARKERS[kind] not in names:
        raise MsfkitError(f"{url}: not {kind.name}; --force only replaces {kind.name}")
    return url
