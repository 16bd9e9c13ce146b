"""The one rule that keeps a path read from data inside its source: the names.

Names come from strangers: tar members (`../../outside.jpg`), the lines of a path list, the `path`
column of a store's metadata, the `source_root` of an edited manifest. A name is unsafe when it is
empty, absolute, holds a NUL, or has a `..` part:

    name_problem("../../x.jpg")          # "has a '..' part"; None for a safe name
    check_row_names(meta["path"], store)  # a store's or index's row paths, read when it is opened
    row_paths("/data", ["cats/a.jpg"])   # [Path("/data/cats/a.jpg")]: every name checked, the root absolute

Listing makes an unsafe name an error row (`msfkit.data.inputs`, `msfkit.data.archives`); reading a
store's metadata or an index's rows refuses a row path that is one; reading a row's file for sending or
drawing resolves it again, symlinks too, and compares it with its metadata (`msfkit.data.row_files`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from msfkit.data.storage import is_url
from msfkit.models.errors import MsfkitError

LIST_SUFFIXES = (".txt", ".lst", ".list", ".csv", ".parquet")  # path lists and tables (msfkit.data.inputs)


class UnsafePath(MsfkitError):
    """A path from data that would leave its source, or a row's file that is no longer the one embedded."""


def name_problem(name: str) -> str | None:
    """Why `name` (relative, '/'-separated, read from data) cannot name a file under a root, or None."""
    if not name:
        return "empty"
    if "\0" in name:
        return "holds a NUL character"
    if name.startswith("/"):
        return "absolute"
    if ".." in name.split("/"):
        return "has a '..' part"
    return None


def clean_name(name: str) -> str:
    """A safe name without empty and `.` parts: `./a//b.jpg` -> `a/b.jpg`."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def check_row_names(rels: Iterable[str], where: str | os.PathLike) -> None:
    """`UnsafePath` naming `where` (a store, an index) and the first stored row path that is unsafe."""
    for rel in rels:
        problem = name_problem(rel) if isinstance(rel, str) else "not text"
        if problem is not None:
            raise UnsafePath(f"{where}: row path {rel!r} is unsafe ({problem}); it was edited, do not use it")


def row_paths(
    root: str | os.PathLike | None, rels: Iterable[str], where: str | os.PathLike
) -> list[Path] | list[str]:
    """`root / rel` for each stored row path (a URL root, an object-storage prefix: `ROOT/rel` URLs);
    `UnsafePath` naming `where` (the store or index) when the root is neither an absolute path nor a
    URL, or a row path is unsafe (`check_row_names`)."""
    remote = root is not None and is_url(root)
    if root is None or not (remote or os.path.isabs(root)):
        raise UnsafePath(f"{where}: its source root {root!r} is not an absolute path; it was edited")
    rels = list(rels)
    check_row_names(rels, where)
    if remote:
        return [f"{os.fspath(root).rstrip('/')}/{rel}" for rel in rels]
    base = Path(root)
    return [base / rel for rel in rels]


def refused_entry(path: str) -> tuple[str, str] | None:
    """(path list, entry) when `path` is `LIST/ENTRY`, the name `msfkit.data.inputs` gives an entry of a
    path list or table that `name_problem` refuses, so that it reads as an error row; else None."""
    lower = path.lower()
    for suffix in LIST_SUFFIXES:
        marker = lower.find(suffix + "/")
        while marker != -1:
            listed = path[: marker + len(suffix)]
            if os.path.isfile(listed):
                return listed, path[marker + len(suffix) + 1 :]
            marker = lower.find(suffix + "/", marker + 1)
    return None
