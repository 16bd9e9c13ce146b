"""`msfkit ARGS` through the click group in this process, as a `subprocess.CompletedProcess` like the
installed command's in a subprocess, without the fresh interpreter's torch import (seconds a call).

For a test's further cases of a command whose exit path the test, or its file, also checks through
the installed command. An exception that the CLI would print as a traceback is raised here, so it
fails the test; a one-line error is exit code 1 with that line on stderr.
"""

from __future__ import annotations

import subprocess

from click.testing import CliRunner

from msfkit.cli.main import cli


def in_process(*args) -> subprocess.CompletedProcess:
    """`msfkit ARGS` run by the click group in this process: exit code, stdout and stderr."""
    argv = [str(a) for a in args]
    r = CliRunner().invoke(cli, argv, catch_exceptions=False)
    return subprocess.CompletedProcess(["msfkit", *argv], r.exit_code, r.stdout, r.stderr)
