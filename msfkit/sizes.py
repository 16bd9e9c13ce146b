"""Sizes in bytes (`--memory 4GB`) and msfkit's cache folder: plain Python, no torch or faiss, so
the rooms that only plan or cache (store, index) load neither for it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from msfkit._cache import cache_root
from msfkit.models.errors import MsfkitError

_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*")
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20}
_UNITS |= {"g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}


def parse_size(text: str | int, what: str = "size") -> int:
    """'4GB', '512MiB', '2g', '1.5GiB' or a byte count -> bytes (units are powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _SIZE.fullmatch(str(text))
    if not m or m[2].lower() not in _UNITS:
        raise MsfkitError(f"{what} {text!r}: expected a size such as 512MB, 4GB or 1.5GiB")
    return int(float(m[1]) * _UNITS[m[2].lower()])


def format_bytes(n: float) -> str:
    """A byte count for people: '1.9 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def cache_dir(*parts: str) -> Path:
    """msfkit's cache folder (reusable work such as evaluation features): $MSFKIT_CACHE, else
    $XDG_CACHE_HOME/msfkit, else ~/.cache/msfkit; never the current folder."""
    return Path(cache_root(), *parts)


def url_cache_dir(kind: str, url: str, *parts: str) -> Path:
    """The cache folder of `kind` (stores, indexes) for the object-storage URL `url`: one per URL,
    named by a hash of it (a trailing '/' does not make another)."""
    return cache_dir(kind, hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16], *parts)
