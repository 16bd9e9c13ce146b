"""The run's two time keepers: `Clock` (training minutes, the x axis of the learning curve) and
`Window` (loss, purity and images/s averaged over the steps since the last metrics.csv row).

Both leave out the time the k-NN monitor spends, so that minutes and images/s measure training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Clock:
    """Minutes of training: those of earlier sessions (`before`, from the checkpoint) plus this
    session's wall time, less the time left out (the monitor's)."""

    before: float = 0.0
    start: float = field(default_factory=time.perf_counter)
    left_out: float = 0.0

    def minutes(self) -> float:
        return self.before + (time.perf_counter() - self.start - self.left_out) / 60

    def leave_out(self, seconds: float) -> None:
        self.left_out += seconds


@dataclass
class Window:
    """Sums over the steps since the last metrics row; `start` moves on at each row."""

    loss: float = 0.0
    purity: float = 0.0
    steps: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, loss: float, purity: float) -> None:
        self.loss += loss
        self.purity += purity
        self.steps += 1

    def images_per_s(self, batch_size: int) -> float:
        return self.steps * batch_size / (time.perf_counter() - self.start)

    def leave_out(self, seconds: float) -> None:
        self.start += seconds

    def reset(self) -> None:
        self.loss, self.purity, self.steps, self.start = 0.0, 0.0, 0, time.perf_counter()
