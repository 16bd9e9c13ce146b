"""The wall time and peak memory of one command in a process of its own, for the benches.

    cost = measure([*msfkit_command(), "curate", "outliers", "index"], log=Path("outliers.log"))
    cost.seconds, cost.peak_mib, cost.exit_code

The command is started by a small Python launcher that waits for it with `os.wait4`, whose answer
is the rusage of that one child: its `ru_maxrss` is the command's own peak resident set (the largest
of the command and the processes it waited for). Two other ways mix peaks: a command forked from the
bench itself starts from the bench's peak (Linux keeps a process's high-water mark across exec), and
`RUSAGE_CHILDREN` keeps the largest of all the children waited for so far. The seconds are the
launcher's clock from the start of the command to its end: what a user waits for at the prompt,
the interpreter's start and imports included.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = """
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, use = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(out, "w") as f:
    json.dump({"seconds": seconds, "maxrss_kib": use.ru_maxrss, "exit": os.waitstatus_to_exitcode(status)}, f)
"""


@dataclass(frozen=True)
class Cost:
    """One command's wall seconds, peak resident set (MiB) and exit code."""

    seconds: float
    peak_mib: float
    exit_code: int


def msfkit_command() -> list[str]:
    """The installed `msfkit` console script beside this interpreter, else `python -m msfkit.cli`."""
    script = Path(sys.executable).parent / "msfkit"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "msfkit.cli"]


def measure(argv: list[str], log: Path) -> Cost:
    """Run `argv` (its stdout and stderr to `log`) in a process of its own; what it cost."""
    with tempfile.TemporaryDirectory(prefix="msfkit-cost-") as tmp, open(log, "wb") as out:
        answer = Path(tmp) / "cost.json"
        subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(answer), *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )
        facts = json.loads(answer.read_text())
    return Cost(facts["seconds"], facts["maxrss_kib"] / 1024, facts["exit"])
