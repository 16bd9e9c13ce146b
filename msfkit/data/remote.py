"""Images in object storage (`s3://`, `gs://`, `hf://`, `memory://`): a prefix walked as a folder is,
and an object read with the facts an embedding store records about a file.

    root = locate("s3://bucket/photos", options)
    walk(root, image_extensions())   # [("s3://bucket/photos/cats/a.jpg", "cats"), ...], sorted
    read_image(root.child("cats/a.jpg"))   # (its bytes, its last-modified time)
    object_facts(open_url("s3://bucket/photos/cats/a.jpg"))   # (size, last-modified), for reruns

The folder rule is the local one (`msfkit.data.inputs`): every object at any depth whose extension
Pillow opens, names starting with `.` skipped (at every level), the first sub-folder under the root
the label. Objects are read whole, one request each, and never copied to the local disk. An
embedding store records an object's size and last-modified time as a file's size and mtime, and a
rerun compares them (`object_facts`) as it compares a file's.
"""

from __future__ import annotations

import os

from msfkit.data.storage import Location, storage_errors
from msfkit.models.errors import MsfkitError


def walk(root: Location, extensions: frozenset[str]) -> list[tuple[str, str | None]]:
    """(URL, label or None) of the image objects under `root`, sorted by name; a root that is
    neither an object prefix nor a folder is one line."""
    found = []
    for name in root.find():
        parts = name.split("/")
        if any(part.startswith(".") for part in parts):
            continue
        if os.path.splitext(parts[-1])[1].lower() in extensions:
            found.append((root.child(name).url, parts[0] if len(parts) > 1 else None))
    if not found and not root.exists():
        raise MsfkitError(f"{root.url}: no such folder or prefix")
    return found


def read_image(where: Location) -> tuple[bytes, float]:
    """(the object's bytes, when it was last written); a missing object is FileNotFoundError."""
    data = where.read_bytes()
    return data, where.modified()


def object_facts(where: Location) -> tuple[int, float]:
    """(size in bytes, when it was last written) of an object; a missing one is FileNotFoundError."""
    return where.size(), where.modified()


def open_url(url: str) -> Location:
    """The `Location` of `url` through this process's filesystem for its protocol (fsspec's cached
    instance, with the configured options), so reading many objects does not connect for each."""
    import fsspec  # optional extra: fsspec

    with storage_errors(url):
        fs, path = fsspec.core.url_to_fs(url)
    return Location(fs, path, url)
