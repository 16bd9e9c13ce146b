"""Writing an index folder: who may replace `out`, the lock beside it, and the staged write.

with locked(out):
    check_replaceable(out, overwrite)
    with staged(out) as tmp:                       # a temporary folder beside `out`
        ...                                        # large files (index.ivfdata) made in place
        write_files(tmp, index, info, rows)        # renamed into place when the block ends

upload_folder(folder, locate("s3://bucket/index"))  # an index at a URL: whole objects, index.json last
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msfkit.data.storage import Location, is_url, locate, protocol, storage_errors
from msfkit.index.folder import FILES, INDEX_FILE, INFO_FILE, IVFDATA_FILE, ROWS_FILE
from msfkit.models.errors import MsfkitError
from msfkit.models.files import is_disk_full
from msfkit.store.objects import put_object

_BUCKETS = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")  # protocols whose first path part is a bucket


def remote_target(out: str | os.PathLike) -> Location | None:
    """The object-storage location of an index output written as a URL; None for the local disk
    (a plain path, or a `file://` URL)."""
    if not is_url(out):
        return None
    target = locate(out)
    if target.local:
        return None
    if not target.path.strip("/"):
        raise MsfkitError(f"{out}: name a bucket and a prefix in it, e.g. s3://bucket/index")
    return target


def check_replaceable(out: Path | Location, overwrite: bool) -> None:
    """A build may write `out` when it does not exist, or with `overwrite` when it is an msfkit index
    folder or empty; anything else (a store, a folder of the user's files) is refused untouched.
    At a URL, the objects under the prefix are judged: only an index's own file names are replaced."""
    if isinstance(out, Location):
        names = out.find()
        bucket = out.path.strip("/").split("/")[0]
        if not names and protocol(out.url) in _BUCKETS and not Location(out.fs, bucket, out.url).exists():
            raise MsfkitError(f"{out.url}: no such bucket {bucket}")
        if names and not overwrite:
            raise MsfkitError(f"{out.url}: already exists; remove it or pass --force")
        if set(names) - set(FILES):
            held = ", ".join(sorted(names)[:5])
            raise MsfkitError(f"{out.url}: holds {held}, not an msfkit index; --force only replaces an index")
        return
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise MsfkitError(f"{out}: already exists; remove it or pass --force")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() and not out.is_symlink() else None
    if entries is None or set(entries) - set(FILES):
        what = "not a folder" if entries is None else f"holds {', '.join(entries[:5])}"
        raise MsfkitError(f"{out}: {what}, not an msfkit index; --force only replaces an index folder")


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the lock of the index folder `out`: a file beside it (the folder itself is replaced by a
    rename), removed when released. A lock file that was removed while we waited counts as taken."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_name(f".{out.name}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not path.exists() or os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise BlockingIOError  # its holder finished and removed it between our open and our lock
    except BlockingIOError:
        os.close(fd)
        raise MsfkitError(f"{out} is being written by another msfkit index; let it finish") from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temporary folder beside `out`, renamed into place (replacing the old index) when the block
    ends without an error, removed otherwise.

    Temporaries a killed run left beside `out` are removed first; a full disk is one line, and the
    old index (if any) stays whole. The caller holds `locked(out)` and has checked the replacement.
    """
    out = out.absolute()
    for stale in out.parent.glob(f".{out.name}.tmp*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out.parent.glob(f".{out.name}.old*"):  # a replaced index a killed run did not remove
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        try:
            yield tmp
        except (OSError, RuntimeError) as e:  # faiss reports a failed write as RuntimeError
            if is_disk_full(e, tmp):
                raise MsfkitError(f"disk full: cannot write the index {out}; free space, run again") from None
            raise
        if out.exists():
            old = out.with_name(f".{out.name}.old{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_folder(out: Path, index: Any, info: dict[str, Any], rows) -> None:
    """The index folder `out` written whole: `staged`, then `write_files`."""
    with staged(out) as tmp:
        write_files(tmp, index, info, rows)


def write_files(folder: Path, index: Any, info: dict[str, Any], rows) -> None:
    """index.faiss, rows.parquet and, last, index.json (with the byte size of every other file)."""
    faiss.write_index(index, str(folder / INDEX_FILE))
    labels = [v if isinstance(v, str) else None for v in rows["label"]]
    table = pa.table(
        {
            "source": pa.array(rows["source"].to_numpy(np.int32)),
            "path": pa.array(rows["path"].tolist(), pa.string()),
            "label": pa.array(labels, pa.string()),
        }
    )
    pq.write_table(table, folder / ROWS_FILE)
    names = (INDEX_FILE, ROWS_FILE, IVFDATA_FILE)
    info["files"] = {name: (folder / name).stat().st_size for name in names if (folder / name).exists()}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=1, default=str) + "\n")


def upload_folder(folder: Path, target: Location) -> None:
    """The index folder `folder` (written whole) as objects under `target`, index.json last: it is the
    commit, so it is removed first when an index is there, and a reader sees the old index, no index,
    or the new one whole. Objects of the old index that the new one lacks are removed before the
    commit. Each file is one object (one PUT, multipart for large files), never seen half written."""
    names = sorted(p.name for p in folder.iterdir() if p.name in FILES and p.name != INFO_FILE)
    old = target.find()
    for name in [INFO_FILE, *sorted(set(old) & set(FILES) - set(names) - {INFO_FILE})]:
        if name in old:
            target.child(name).remove()
    with storage_errors(target.url):
        for name in names:
            target.fs.put_file(str(folder / name), target.child(name).path)
    put_object(target, INFO_FILE, (folder / INFO_FILE).read_bytes())
