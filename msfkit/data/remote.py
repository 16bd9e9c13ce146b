"""Images in object storage (`s3://`, `gs://`, `hf://`, `memory://`): a prefix walked as a folder is,
and an object read with the facts an embedding store records about a file.

    root = locate("s3://bucket/photos", options)
    walk(root, image_extensions())   # [("s3://bucket/photos/cats/a.jpg", "cats"), ...], sorted
    read_image(root.child("cats/a.jpg"))   # (its bytes, its last-modified time)

The folder rule is the local one (`msfkit.data.inputs`): every object at any depth whose extension
Pillow opens, names starting with `.` skipped (at every level), the first sub-folder under the root
the label. Objects are read whole, one request each, and never copied to the local disk.
"""

from __future__ import annotations

import os

from msfkit.data.storage import Location
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
