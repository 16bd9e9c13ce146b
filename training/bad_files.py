"""Unreadable training images: skipped, recorded in RUN/bad_files.csv, replaced by a fixed other image.

A file that fails to decode (zero bytes, truncated, not an image, ...) is replaced by the next
readable image in dataset order (index + 1, + 2, ... wrapping at the end). The replacement
depends only on which files are bad, never on when they were found, by which loader worker or
in which process, so a resumed run sees exactly the images an uninterrupted one saw.

Each bad file is appended once per process to RUN/bad_files.csv (path, reason) with one
O_APPEND write, so loader workers can record without a lock; readers de-duplicate by path.
The run stops, with one line, when more than `max_bad_share` of its images are bad (training.loop).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from msfkit.data.images import BadImageError
from msfkit.models.errors import MsfkitError

BAD_FILES_NAME = "bad_files.csv"
HEADER = ("path", "reason")


class BadFiles:
    """The run's record of bad files: `record` from any process, `read` = {path: reason}."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.seen: set[str] = set()
        self._counted = (-1, 0)  # (file size, rows) at the last count

    def record(self, path: str, reason: str) -> None:
        if path in self.seen:
            return
        self.seen.add(path)
        buf = io.StringIO()
        writer = csv.writer(buf)
        if not self.path.exists():
            writer.writerow(HEADER)  # a header row; a second one from a racing worker is skipped on read
        writer.writerow((path, " ".join(reason.split())))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, buf.getvalue().encode())
        finally:
            os.close(fd)

    def read(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        with self.path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if len(r) == 2 and tuple(r) != HEADER]
        return dict(rows)

    def count(self) -> int:
        """len(read()), read again only when the file has grown (worker processes append to it)."""
        size = self.path.stat().st_size if self.path.is_file() else 0
        if size != self._counted[0]:
            self._counted = (size, len(self.read()))
        return self._counted[1]


def file_path(dataset, i: int) -> str:
    """The file behind item `i` of a file dataset or a Subset of one ("item i" if there is none)."""
    while hasattr(dataset, "indices") and hasattr(dataset, "dataset"):
        dataset, i = dataset.dataset, int(dataset.indices[i])
    paths = getattr(dataset, "paths", None)
    return str(paths[i]) if paths is not None else f"item {i}"


def has_files(dataset) -> bool:
    while hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return hasattr(dataset, "paths")


class SkipBadImages:
    """A file dataset whose unreadable items are replaced by the next readable one (see the module)."""

    def __init__(self, dataset, bad: BadFiles) -> None:
        self.dataset, self.bad = dataset, bad
        self.labels = dataset.labels

    def __len__(self) -> int:
        return len(self.dataset)

    def resolve(self, i: int):
        """(PIL image, index it came from): item i, or the first readable item after it."""
        n = len(self.dataset)
        for step in range(n):
            j = (i + step) % n
            try:
                return self.dataset.image(j), j
            except BadImageError as e:
                path = file_path(self.dataset, j)
                self.bad.record(path, str(e).removeprefix(f"{path}: "))
        raise MsfkitError(f"none of the {n} training images can be read; see {self.bad.path}")

    def image(self, i: int):
        return self.resolve(i)[0]

    def __getitem__(self, i: int):
        image, j = self.resolve(i)
        transform = getattr(self.dataset, "transform", None)
        label = self.labels[j]
        return (transform(image) if transform is not None else image), (
            label.item() if hasattr(label, "item") else label
        )


def skip_bad(dataset, run: str | Path, name: str = BAD_FILES_NAME):
    """`dataset` wrapped in SkipBadImages (recording to RUN/`name`) when it reads files."""
    return SkipBadImages(dataset, BadFiles(Path(run) / name)) if has_files(dataset) else dataset
