"""`EmbedSummary`: what one `msfkit embed` run did, as its last line and as `--json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EmbedSummary:
    """What one run did (this run's counts) and what the store now holds."""

    store: str
    embedded: int  # new files embedded by this run
    failed: int  # files this run could not embed
    skipped: int  # files already in the store (embedded or failed) and unchanged
    seconds: float
    store_embedded: int  # rows in the store after the run
    store_failed: int  # rows of errors.parquet after the run
    changed: int = 0  # files changed since they were embedded (size or mtime), embedded again in place
    gone: int = 0  # files embedded earlier that no longer exist (their rows stay)
    unreadable_folders: int = 0  # sub-folders that could not be listed (recorded in errors.parquet)

    @property
    def images_per_s(self) -> float:
        done = self.embedded + self.failed + self.changed
        return done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The one-line report the CLI ends with."""
        text = (
            f"embedded {self.embedded}, failed {self.failed}, skipped {self.skipped} "
            f"in {self.seconds:.1f} s ({self.images_per_s:.1f} images/s) -> {self.store}"
        )
        if self.changed:
            text += f"; {_n(self.changed, 'changed file')} re-embedded"
        if self.gone:
            text += f"; {_n(self.gone, 'file')} gone since embedded (rows kept)"
        if self.unreadable_folders:
            text += f"; {_n(self.unreadable_folders, 'unreadable folder')} (see errors.parquet)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": round(self.images_per_s, 2)}


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
