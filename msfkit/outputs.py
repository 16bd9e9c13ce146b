"""The output guard: every file or folder a command writes for its user is checked here first.

    check_output("groups.csv", force=False)              # a file: refused if it exists
    check_output("exported", force=True, kind=MODEL)     # a folder: replaced only if a model folder

Three rules, each one line of error raised before anything is written (docs/security.md):
- never inside an embedding store, an index folder or a model folder, with or without --force:
  msfkit reads those, and a file written there breaks them, or is lost when they are rebuilt;
- an existing file is replaced only with --force;
- an existing folder that is not empty is replaced only with --force, and only when it is a
  folder of the kind the command writes (a model folder: its config.json is an msfkit model config).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from msfkit.index.folder import INDEX_FILE, INFO_FILE
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


def is_index_folder(folder: Path) -> bool:
    """Whether `folder` is an msfkit index folder."""
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


def check_not_inside(path: str | os.PathLike) -> Path:
    """The first rule alone, for commands that continue their own output (embed -o, train out=):
    `path` resolved, or a one-line `MsfkitError` when it lies inside a store, index or model folder."""
    path = Path(path)
    where = path.resolve()
    for folder in where.parents:
        for held in READ_KINDS:
            if held.is_kind(folder):
                raise MsfkitError(
                    f"{path}: inside {held.name}, {folder}, which msfkit reads; write it elsewhere"
                )
    return where


def check_output(path: str | os.PathLike, *, force: bool = False, kind: Kind = FILE) -> Path:
    """`path`, absolute, when the command may write a `kind` there; else a one-line `MsfkitError`.

    Links are followed: an output is judged by where it would land."""
    path = Path(path)
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
