"""Turning `msfkit embed` arguments into one sorted list of image files.

An argument is a folder (searched recursively for every extension Pillow opens; hidden files and
folders skipped; the first sub-folder under it is the file's label, as in an ImageFolder), a text
file listing paths (`.txt`, `.lst`, `.list`: one path per line, relative to the list's own folder,
blank lines and `#` comments ignored), a table of paths (`.csv` or `.parquet` with a `path`
column and an optional `label` column; paths relative to the table's folder), a tar archive or
webdataset shard (its image members: see `msfkit.data.archives`; brace lists such as
`train-{0000..0009}.tar` expand), a table of images (a Parquet or .arrow file or a saved `datasets`
folder whose image column holds encoded images or paths: its rows, named `TABLE/COLUMN/ROW`, see
`msfkit.data.tables`), or an image file. A URL (`s3://bucket/photos`, `memory://...`; `file://` is
the local disk) is a prefix of image objects, walked by the folder rule (`msfkit.data.remote`), one
image object, or a Parquet or .arrow table of images; the source root is then the inputs' common URL
prefix, and the inputs of one run are all URLs of one protocol or all local. Paths are kept as
named, not resolved, so a broken symlink is listed (and later reported) rather than silently
dropped. So is a sub-folder that cannot be read (no permission): it is listed as an entry of its
own, which fails to decode as "unreadable folder", and named in `Listing.unreadable`.

Names read from a list, a table or an archive are data (`msfkit.data.paths`): one that is absolute
or has a `..` part is not followed. It is listed as `LIST/ENTRY` (or `ARCHIVE.tar/MEMBER`), a name
inside the file it came from, which decodes as "unsafe ..." and so becomes an error row of the
store like any unreadable file, and adds nothing to the source root.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from msfkit.data.archives import archives, is_archive, members, refuse_unreadable
from msfkit.data.images import image_extensions
from msfkit.data.paths import LIST_SUFFIXES, name_problem
from msfkit.data.remote import walk
from msfkit.data.storage import is_remote, local_path, locate
from msfkit.data.tables import TableOptions, holds_images, table_rows
from msfkit.models.errors import MsfkitError

TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class SourceFile:
    """One input file: where it is, its path relative to the source root, its class label."""

    path: str  # absolute, as named (symlinks not resolved), or a URL
    rel: str  # relative to the source root, '/'-separated
    label: str | None


@dataclass
class Listing:
    """Every input file, sorted by relative path and de-duplicated, under one source root."""

    root: Path | str  # the source root: a folder, or the URL prefix of remote inputs
    files: list[SourceFile] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # sub-folders that could not be read (absolute)

    @cached_property
    def hash(self) -> str:
        """Identifies the exact file list (a resumed run must see the same one)."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f.rel.encode() + b"\n")
        return h.hexdigest()[:16]


def list_inputs(inputs: Sequence[str | os.PathLike], tables: TableOptions | None = None) -> Listing:
    """The files named by `inputs` (folders, path lists, tables, single files); see the module
    docstring. `tables`: which columns of a table input hold the images and the labels."""
    tables = tables or TableOptions()
    if not inputs:
        raise MsfkitError("no inputs: give image folders, files, or a text file listing paths")
    found: list[tuple[str, str | None, str | None]] = []  # (absolute path, name inside it, label)
    anchors: list[str] = []  # folders the source root must contain
    unreadable: list[str] = []
    for raw in _expanded(inputs):
        if is_remote(raw):
            found += _remote(os.fspath(raw).rstrip("/"), tables, anchors)
            continue
        path = os.path.abspath(os.path.expanduser(local_path(raw)))
        refuse_unreadable(path)
        if os.path.isfile(path) and is_archive(path):  # a tar or webdataset shard: its image members
            anchors.append(os.path.dirname(path))
            found += [(path, name, label) for name, label in members(path, image_extensions())]
        elif holds_images(path, tables):  # a table of images: its rows, as members of it
            anchors.append(path if os.path.isdir(path) else os.path.dirname(path))
            found += [(path, name, label) for name, label in table_rows(path, tables)]
        elif os.path.isdir(path):
            anchors.append(path)
            found += [(p, None, label) for p, label in _walk(path, unreadable)]
        elif os.path.isfile(path) and path.lower().endswith(LIST_SUFFIXES):
            found += _listed(path, anchors)
        elif os.path.lexists(path):
            anchors.append(os.path.dirname(path))
            found.append((path, None, None))
        else:
            raise MsfkitError(f"{raw}: no such file or folder")
    if not anchors:
        raise MsfkitError("the inputs name no files")
    root = _common_root(anchors)
    files: dict[str, SourceFile] = {}
    for path, inner, label in found:
        rel = _relative(path, root)
        if inner is not None:  # kept as named: a refused name must not fold into another file's
            path, rel = f"{path}/{inner}", f"{rel}/{inner}"
        files.setdefault(rel, SourceFile(path, rel, label))
    root = root if is_remote(root) else Path(root)
    return Listing(root, [files[rel] for rel in sorted(files)], sorted(set(unreadable)))


def _remote(url: str, tables: TableOptions, anchors: list[str]) -> list[tuple[str, str | None, str | None]]:
    """The entries of a URL input: a table of images' rows, one image object, or the image objects
    under a prefix."""
    refuse_unreadable(url)
    if is_archive(url):  # a tar or webdataset shard: its members, streamed (msfkit.data.archives)
        anchors.append(posixpath.dirname(url))
        return [(url, name, label) for name, label in members(url, image_extensions())]
    if holds_images(url, tables):
        anchors.append(posixpath.dirname(url))
        return [(url, name, label) for name, label in table_rows(url, tables)]
    where = locate(url)
    if where.is_file():
        anchors.append(posixpath.dirname(url))
        return [(url, None, None)]
    anchors.append(url)
    return [(found, None, label) for found, label in walk(where, image_extensions())]


def _common_root(anchors: list[str]) -> str:
    """The folder (or URL prefix) that holds every anchor."""
    remote = [a for a in anchors if is_remote(a)]
    if not remote:
        return os.path.commonpath(anchors)
    schemes = {a.split("://", 1)[0].lower() for a in remote}
    common = posixpath.commonpath(["/" + a.split("://", 1)[1] for a in remote])
    if len(remote) < len(anchors) or len(schemes) > 1 or common == "/":
        raise MsfkitError(
            "the inputs are in different places (local files and URLs, several protocols or buckets); "
            "embed each place into a store of its own"
        )
    return f"{schemes.pop()}://{common.lstrip('/')}"


def _relative(path: str, root: str) -> str:
    """`path` relative to the source root, '/'-separated."""
    if is_remote(root):
        return posixpath.relpath("/" + path.split("://", 1)[1], "/" + root.split("://", 1)[1])
    return Path(os.path.relpath(path, root)).as_posix()


def _expanded(inputs: Sequence[str | os.PathLike]) -> list[str | os.PathLike]:
    """Brace lists and ranges of archive names (`train-{0000..0009}.tar`) expanded, in order."""
    return [one for raw in inputs for one in (archives(os.fspath(raw)) if "{" in os.fspath(raw) else [raw])]


def _listed(list_path: str, anchors: list[str]) -> list[tuple[str, str | None, str | None]]:
    """The entries of a path list or table: a safe one as a file under the list's folder (its folder
    anchors the source root), an unsafe one (`name_problem`) as LIST/ENTRY, an error row."""
    table = list_path.lower().endswith(TABLE_SUFFIXES)
    base = os.path.dirname(list_path)
    out: list[tuple[str, str | None, str | None]] = []
    for entry, label in _read_table(list_path) if table else _read_list(list_path):
        if name_problem(entry) is None:
            path = os.path.abspath(os.path.join(base, entry))
            anchors.append(os.path.dirname(path))
            out.append((path, None, label))
        else:
            anchors.append(base)
            out.append((list_path, entry, None))
    return out


def _walk(top: str, unreadable: list[str]) -> list[tuple[str, str | None]]:
    """(path, label) of the images under `top`; a sub-folder that cannot be read is listed too (and
    added to `unreadable`), so that the run reports it; `top` itself unreadable is an error."""
    extensions = image_extensions()
    out, failed = [], []

    def label(path: str) -> str | None:
        rel_dir = os.path.relpath(path, top)
        return None if rel_dir == "." else Path(rel_dir).parts[0]

    for dirpath, dirnames, filenames in os.walk(top, onerror=failed.append):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                out.append((os.path.join(dirpath, name), label(dirpath)))
    for e in failed:
        if os.path.abspath(e.filename or top) == top:
            raise MsfkitError(f"{top}: cannot read this folder ({e.strerror or e})")
        unreadable.append(e.filename)
        out.append((e.filename, label(e.filename)))
    return out


def _read_list(list_path: str) -> list[tuple[str, str | None]]:
    """(entry as written, None) of each path line of a list."""
    try:
        with open(list_path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise MsfkitError(f"{list_path}: unreadable path list ({e})") from None
    return [(line, None) for line in lines if line and not line.startswith("#")]


def _read_table(table_path: str) -> list[tuple[str, str | None]]:
    """(entry as written, label) rows of a .csv or .parquet table with a `path` column (and maybe `label`)."""
    import pandas as pd  # loads pandas: only a table of paths needs it

    try:
        if table_path.lower().endswith(".csv"):
            df = pd.read_csv(table_path, dtype=str, keep_default_na=False)
        else:
            df = pd.read_parquet(table_path)
    except Exception as e:  # pandas and pyarrow raise many types for a damaged table
        raise MsfkitError(f"{table_path}: unreadable table of paths ({type(e).__name__})") from None
    if "path" not in df.columns:
        has = ", ".join(map(str, df.columns))
        raise MsfkitError(f"{table_path}: a table of inputs needs a 'path' column (has {has})")
    labels = df["label"] if "label" in df.columns else [None] * len(df)
    rows = []
    for raw, label in zip(df["path"], labels, strict=True):
        if not isinstance(raw, str) or not raw:
            raise MsfkitError(f"{table_path}: every 'path' must be text, found {raw!r}")
        missing = label is None or (isinstance(label, float) and label != label) or label == ""
        label = None if missing else str(label)
        rows.append((raw, label))
    return rows
