"""The line a long embedding job prints on stderr before it gets going: how much, with what, how long.

    embedding 70,000 images (60,000 train + 10,000 val) with resnet18 on cpu; about 4 min

The time comes from the job itself: the first batch (worker start-up, graph warm-up) is left out,
the next `WARMUP_BATCHES` are timed, and the whole job is taken to run at that rate. The
line is printed once, then, and only for a long job (more than `LONG_IMAGES` images or more than
`LONG_SECONDS` expected); never on stdout, which `--json` keeps for its one document. One
`JobLine` can span several runs (`msfkit eval` embeds a train and a val split): it counts them all.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

LONG_IMAGES = 1000
LONG_SECONDS = 30.0
WARMUP_BATCHES = 2


class JobLine:
    """Says once, on stderr, how many images a job embeds and about how long it will take."""

    def __init__(self, parts: dict[str, int], arch: str, device: object) -> None:
        self.parts = {name: n for name, n in parts.items() if n}  # e.g. {"train": 60000, "val": 10000}
        self.total = sum(self.parts.values())
        self.arch, self.device = arch, getattr(device, "type", device)
        self.done = 0  # images through so far, over every run of the job
        self.said = False
        self._start: float | None = None
        self._timed = self._batches = 0

    def run_started(self) -> None:
        """A run of the job begins: its first batch pays for start-up and is not timed."""
        self._start, self._timed, self._batches = None, 0, 0

    def batch(self, images: int) -> None:
        """`images` more went through (a batch, embedded or failed)."""
        self.done += images
        if self.said:
            return
        now = time.perf_counter()
        if self._start is None:
            self._start = now
            return
        self._timed += images
        self._batches += 1
        if self._batches < WARMUP_BATCHES or now <= self._start:
            return
        self.said = True
        seconds = self.total * (now - self._start) / self._timed  # the whole job, at the measured rate
        if self.total > LONG_IMAGES or seconds > LONG_SECONDS:
            tqdm.write(self.text(seconds), file=sys.stderr)  # above a progress bar, if one is drawn

    def text(self, seconds: float) -> str:
        split = " + ".join(f"{n:,} {name}" for name, n in self.parts.items())
        split = f" ({split})" if len(self.parts) > 1 else ""
        where = f"with {self.arch} on {self.device}"
        return f"embedding {self.total:,} images{split} {where}; about {duration(seconds)}"


def duration(seconds: float) -> str:
    """A rough duration for people: '20 s', '4 min', '2 h 10 min'."""
    if seconds < 55:
        return f"{max(5, round(seconds / 5) * 5)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{max(1, minutes)} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def job_line(announce: object, images: int, arch: str, device: object) -> JobLine | None:
    """The JobLine of a run: the job's own when `announce` is one, a new one when True, else None."""
    if isinstance(announce, JobLine):
        return announce
    return JobLine({"": images}, arch, device) if announce else None
