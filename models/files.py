"""Atomic file writes, shared by every room: a killed process never leaves a half-written file."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from msfkit.models.errors import MsfkitError


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], durable: bool = False) -> Path:
    """Call `write(tmp)` for a temporary name beside `path`, then rename it over `path`.

    The rename is atomic on one filesystem, so readers see the old file or the new one, never a
    part; a failed `write` leaves `path` as it was and removes the temporary file. `durable`: the
    file and then the rename are flushed to disk (fsync), so that this holds after a crash of the
    machine too, not only of the process.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")  # threads may race
    try:
        write(tmp)
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except Exception as e:  # a short write in a library's own error type: torch.save, safetensors
        reported = isinstance(e, (OSError, RuntimeError)) or "os error 28" in str(e)
        if reported and is_disk_full(e, path.parent):
            raise MsfkitError(f"disk full: cannot write {path}; free space there and run again") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        _fsync(path.parent)  # the rename itself
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(e: BaseException, where: str | os.PathLike) -> bool:
    """Whether `e`, raised while writing under `where`, means the filesystem (or quota) is full:
    by its errno, or, for libraries that report a short write without one (numpy, faiss), by the
    free space left there."""
    if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(e):
        return True
    try:
        return shutil.disk_usage(where).free < 1 << 16
    except OSError:
        return False
