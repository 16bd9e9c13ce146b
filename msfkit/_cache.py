"""msfkit's cache folder, named with `os` alone: the command's entry point finds its cached help page
with it before anything heavier is imported (msfkit.sizes.cache_dir is the same folder as a Path)."""

from __future__ import annotations

import os


def cache_root() -> str:
    """$MSFKIT_CACHE, else $XDG_CACHE_HOME/msfkit, else ~/.cache/msfkit; never the current folder."""
    return os.environ.get("MSFKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "msfkit"
    )
