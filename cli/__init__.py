"""The `msfkit` command's entry point: it answers `msfkit -V` and the top-level help page before
importing click or any command's module, then hands every other command line to the click group
(msfkit.cli.main).

The help page comes from click the first time and is kept in msfkit's cache folder with the key of
everything that shapes it on its first line: the package's version, the width click wraps to, and
the name, size and modification time of each module of this package and of click. A later
`msfkit -h` whose key is the same prints the kept text; any change, or a cache that cannot be read
or written, means click renders the page again.
"""

from __future__ import annotations

import os
import sys

HELP_ARGS = ([], ["-h"], ["--help"])  # the command lines that print the top-level page
MAX_WIDTH = 100  # the group's max_content_width (msfkit.cli.main.CONTEXT_SETTINGS)


def main() -> None:
    """Console entry point (`msfkit`)."""
    args = sys.argv[1:]
    if args in (["-V"], ["--version"]):
        from msfkit._version import __version__

        sys.stdout.write(f"msfkit, version {__version__}\n")
        return
    key = help_key() if args in HELP_ARGS else None
    if key is not None:
        page = cached_help_page(key)
        if page is not None:
            sys.stdout.write(page)
            return
    from msfkit.cli.main import main as run

    run(help_key=key)


def help_key() -> str | None:
    """What the top-level help page depends on, as one line; None when it cannot be read."""
    from msfkit._version import __version__

    parts = [__version__, str(help_width())]
    try:
        for folder in (os.path.dirname(os.path.abspath(__file__)), click_folder()):
            if folder is None:
                return None
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.name.endswith(".py"):
                    st = entry.stat()
                    parts.append(f"{entry.path}:{st.st_size}:{st.st_mtime_ns}")
    except OSError:
        return None
    return "|".join(parts).replace("\n", " ")


def help_width() -> int:
    """The width click's help formatter wraps to: the terminal's columns (as shutil reads them:
    $COLUMNS, else the terminal of stdout, else 80) less 2, at most MAX_WIDTH - 2, at least 50."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return max(min(columns, MAX_WIDTH) - 2, 50)


def click_folder() -> str | None:
    """The folder of the click package this interpreter would import, found without importing it."""
    for entry in sys.path:
        folder = os.path.join(entry or ".", "click")
        if os.path.isfile(os.path.join(folder, "__init__.py")):
            return os.path.abspath(folder)
    return None


def help_page_path(key: str) -> str:
    import zlib

    from msfkit._cache import cache_root

    return os.path.join(cache_root(), "help", f"{zlib.crc32(key.encode()):08x}.txt")


def cached_help_page(key: str) -> str | None:
    """The kept page whose first line is `key`, or None."""
    try:
        with open(help_page_path(key), encoding="utf-8") as f:
            first, _, page = f.read().partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    return page if first == key and page else None


def keep_help_page(key: str, page: str) -> None:
    """Keep the rendered page under `key`, atomically; a cache that cannot be written is skipped."""
    path = help_page_path(key)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{key}\n{page}")
        os.replace(tmp, path)
    except OSError:
        import contextlib

        with contextlib.suppress(OSError):
            os.unlink(tmp)
