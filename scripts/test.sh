#!/usr/bin/env bash
# Set up (see setup.sh), run the linter, then the test suite on the CPU. Arguments go to pytest:
# none is the whole suite, as CI runs it (.ci/run); -m "not slow" is the inner loop (README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .  # ruff is pinned to a minor version: its style changes between them
# two test processes (pytest-xdist), a file each at a time: the suite is CPU-bound, mostly in the
# `msfkit` subprocesses it starts; MSFKIT_TEST_PROCESSES=0 runs it in this one process. Each test
# process and its children get one OpenMP thread (tests/conftest.py; OMP_NUM_THREADS set here wins).
# --no-loadscope-reorder keeps the file order of tests/conftest.py (its slowest files first);
# --durations=25 lists the slowest tests at the end of the log.
.venv/bin/python -m pytest -n "${MSFKIT_TEST_PROCESSES:-2}" --dist loadfile --no-loadscope-reorder --durations=25 "$@"
