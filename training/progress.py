"""What a run says while it trains: the progress bar, whose ETA honours the time box, and the
lines about where a run starts and why it stops.

    resumed from step 100/468 (epoch 1/4)
    epoch 1/4:  21%|██        | 100/468 [02:59<00:01, 0.6step/s, loss=1.234]     (max_minutes=3)
    stopped by max_minutes at step 100/468; continue with: msfkit train --resume out=runs/x

A run stopped by `max_steps` says to add `max_steps=0` (the saved config would stop it again at
once); one stopped by `max_minutes` continues for another time box with the same command. The
lines go to stderr, with the bar, so `--json` keeps stdout to its one object.
"""

from __future__ import annotations

import math
import shlex
import signal
import sys
import time

from tqdm import tqdm

from msfkit.training.config import TrainConfig

BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{eta}, {rate_fmt}{postfix}]"


class TimeBoxBar(tqdm):
    """A tqdm bar whose remaining time is the sooner of its own estimate and the time box's end."""

    deadline = math.inf  # time.monotonic() at which the run stops (max_minutes), inf without one

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, bar_format=BAR_FORMAT, **kwargs)

    @property
    def format_dict(self):
        d = super().format_dict
        n, total, elapsed = d["n"], d["total"], d["elapsed"]
        rate = d["rate"] or ((n - d["initial"]) / elapsed if elapsed and n > d["initial"] else None)
        left = (total - n) / rate if rate and total else None
        boxed = self.deadline - time.monotonic()
        if self.deadline < math.inf and (left is None or boxed < left):
            left = max(boxed, 0.0)
        d["eta"] = tqdm.format_interval(left) if left is not None else "?"
        return d


def continue_command(cfg: TrainConfig, extra: str = "") -> str:
    """The command that resumes this run from its checkpoint (run from the same directory)."""
    return " ".join(["msfkit train --resume", shlex.quote(f"out={cfg.out}"), *([extra] if extra else [])])


class Progress:
    """The bar and the run's messages; `show` is False on ranks other than 0 (nothing at all)."""

    def __init__(
        self, cfg: TrainConfig, *, step: int, stop: int, steps_per_epoch: int, bar: bool, show: bool
    ):
        self.cfg, self.show, self.steps_per_epoch = cfg, show, steps_per_epoch
        self.total = cfg.epochs * steps_per_epoch
        self.deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes else math.inf
        self.bar = TimeBoxBar(
            total=stop,
            initial=step,
            unit="step",
            disable=not (bar and show),
            dynamic_ncols=True,
        )
        self.bar.deadline = self.deadline

    def write(self, line: str) -> None:
        if self.show:
            self.bar.write(line, file=sys.stderr)

    def out_of_time(self) -> bool:
        """Whether the time box is over (the caller makes every rank agree)."""
        return time.monotonic() > self.deadline

    def epoch(self, epoch: int) -> None:
        self.bar.set_description(f"epoch {epoch + 1}/{self.cfg.epochs}")

    def resumed(self, step: int) -> None:
        epoch = math.ceil(step / self.steps_per_epoch)
        self.write(f"resumed from step {step}/{self.total} (epoch {epoch}/{self.cfg.epochs})")

    def stopped(self, step: int) -> None:
        """The line of a run that ends before its last epoch: why, and the command that continues it."""
        if step >= self.total:
            return
        reason = "max_steps" if self.cfg.max_steps and step >= self.cfg.max_steps else "max_minutes"
        extra = "max_steps=0" if reason == "max_steps" else ""
        again = continue_command(self.cfg, extra)
        self.write(f"stopped by {reason} at step {step}/{self.total}; continue with: {again}")

    def interrupted(self, step: int, saved: int | None, how: str = "interrupted") -> None:
        """Ctrl-C or SIGTERM: where the run was, and what a resume starts from."""
        if saved:
            kept = f"the checkpoint holds step {saved}; continue with: {continue_command(self.cfg)}"
        else:
            kept = "no checkpoint was written yet; start again"
        self.write(f"{how} at step {step}/{self.total}; {kept}")

    def close(self) -> None:
        self.bar.close()


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler stopping the job): the run ends as on Ctrl-C, and the command exits 143."""

    exit_code = 128 + signal.SIGTERM


def terminate(signum, frame) -> None:
    """The SIGTERM handler `train` installs while it runs."""
    raise Terminated()


def how_it_ended(e: KeyboardInterrupt) -> str:
    return "terminated" if isinstance(e, Terminated) else "interrupted"
