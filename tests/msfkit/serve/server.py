"""`msfkit serve` as the tests run it: the installed command in a subprocess on a free port."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTUP_SECONDS = 120  # torch, faiss and the model load first; a busy 2-core machine is slow


def msfkit_command() -> list[str]:
    """The installed console script beside this interpreter, else `python -m msfkit.cli`."""
    script = Path(sys.executable).parent / "msfkit"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "msfkit.cli"]


def server_env(cache: Path, hf_home: Path) -> dict[str, str]:
    env = dict(os.environ, MSFKIT_CACHE=str(cache), HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    env.pop("MSFKIT_MODEL", None)
    return env


class Server:
    """`msfkit serve INDEX --port 0 ...`, started and stopped; `url` is what it printed, `lines` what it
    printed until then, `output()` all it has printed (stdout and stderr)."""

    def __init__(self, index: Path, env: dict[str, str], *args: str) -> None:
        self.argv = [*msfkit_command(), "serve", str(index), "--port", "0", *args]
        self.env = env
        self.url = ""
        self.lines: list[str] = []
        self.log: list[str] = []

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            for line in self.proc.stdout:
                self.log.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.url:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.__exit__()
                raise AssertionError(f"no URL in {STARTUP_SECONDS} s: {self.lines}") from None
            if line is None:
                raise AssertionError(f"msfkit serve exited ({self.proc.wait()}): {''.join(self.lines)}")
            self.lines.append(line)
            if line.startswith("msfkit serve: http://"):
                self.url = line.split()[2]
            elif line.startswith('{"url": '):  # --json
                self.url = json.loads(line)["url"]
        return self

    def output(self, quiet: float = 0.5) -> str:
        """Everything printed so far, once nothing new has come for `quiet` seconds (what a request
        logs is written before its answer is sent, so it is in by then)."""
        seen = -1
        while seen != len(self.log):
            seen = len(self.log)
            time.sleep(quiet)
        return "".join(self.log)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
