"""Files that changed or disappeared since a store was embedded, and their rows replaced in place.

A rerun of `msfkit embed` stats every embedded file of the store. A file of this run's inputs whose
size or modification time differs from its meta row is embedded again and its row replaced where
it is (same row id, `msfkit.store.replace`). Shards written before `mtime_ns` existed are compared
by size and by their float `mtime`, which is the same `os.stat` value, so they are checked as well.
A file that no longer exists is counted; its row stays. Members of tar archives are not checked.
An object in object storage is compared by its size and last-modified time, which its row recorded
(`msfkit.data.remote.object_facts`); images held in tables are not checked.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from msfkit.data.archives import split_member
from msfkit.data.cells import split_cell
from msfkit.data.inputs import Listing, SourceFile
from msfkit.data.remote import object_facts, open_url
from msfkit.data.storage import is_remote
from msfkit.embedding.pipeline import Embedded
from msfkit.store.replace import replace_rows
from msfkit.store.shards import read_meta


@dataclass
class Changes:
    """What a rerun found in the committed shards of a store."""

    changed: dict[int, list[SourceFile]] = field(default_factory=dict)  # shard -> files to embed again
    gone: int = 0  # embedded files that no longer exist (their rows stay in the store)

    @property
    def count(self) -> int:
        return sum(len(files) for files in self.changed.values())


def find_changes(out: Path, shards: list[int], listing: Listing) -> Changes:
    """The files of `listing` whose rows in `shards` are out of date; the rows whose files are gone."""
    ours = {f.rel: f for f in listing.files}
    found = Changes()
    for k in shards:
        meta = read_meta(out, k).to_pydict()
        rows = zip(meta["path"], meta["bytes"], meta["mtime"], meta["mtime_ns"], strict=True)
        for rel, size, mtime, mtime_ns in rows:
            f = ours.get(rel)
            try:
                facts = _facts(f.path if f is not None else f"{listing.root}/{rel}")
            except FileNotFoundError:
                found.gone += 1
                continue
            except OSError:  # unreadable now, or a member of a tar archive: nothing to compare
                continue
            if facts is None:
                continue
            now_size, now_ns, now_mtime = facts
            same_time = now_ns == mtime_ns if mtime_ns is not None else now_mtime == mtime
            if f is not None and not (now_size == size and same_time):
                found.changed.setdefault(k, []).append(f)
    return found


def _facts(path: str) -> tuple[int, int, float] | None:
    """(size, mtime in ns, mtime) of a file or object as its meta row records them; None for an
    image held in a remote table or a member of a remote tar (nothing to compare, as on disk)."""
    if is_remote(path):
        if split_cell(path) is not None or split_member(path) is not None:
            return None
        size, mtime = object_facts(open_url(path))
        return size, int(mtime * 1_000_000_000), mtime
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_mtime


def commit_replacement(out: Path, k: int, files: list[SourceFile], part: Embedded) -> int:
    """Replace the rows of shard `k` for `files` with the `part` just computed from them; a file that
    cannot be embedded now keeps its old row, with a warning. The number of rows replaced."""
    for i, reason in part.failed:
        print(
            f"warning: {files[i].rel} changed since it was embedded but cannot be embedded now "
            f"({reason}); its old vector stays",
            file=sys.stderr,
        )
    rows = zip(part.index, part.vectors, part.facts, strict=True)
    done = {files[i].rel: (vector, facts) for i, vector, facts in rows}
    if done:
        replace_rows(out, k, done)
    return len(done)
