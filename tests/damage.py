"""Real store and index folders to damage on purpose, and the check that reading one gives one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from msfkit.index import build_index
from tests.msfkit.index_stores import clustered_vectors, write_vector_store


def edit_json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def store_and_index(root: Path) -> Path:
    """A real store of 120 vectors (root/store) and its flat index (root/index)."""
    store = write_vector_store(root / "store", clustered_vectors(120, 16, 4, seed=0))
    build_index(store, root / "index", kind="flat")
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(r: subprocess.CompletedProcess, where: str, message: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("Error: ") and where in r.stderr and message in r.stderr, r.stderr
