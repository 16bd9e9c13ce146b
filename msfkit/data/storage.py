"""Where msfkit reads and writes: local paths and fsspec URLs behind one small interface.

    options = parse_storage_options(["client_kwargs.endpoint_url=http://127.0.0.1:9000"])
    store = locate("s3://bucket/store", options)
    store.child("emb", "00000.npy").write_bytes(data)   # one whole object (one PUT)
    store.child("meta").listdir()                       # names right under it, sorted
    store.child("manifest.json").read_bytes()

Plain paths and `file://` URLs are the local disk: a write goes to a temporary name renamed into
place (`atomic_write`), as everywhere else in msfkit. Any other protocol fsspec knows goes through
its filesystem: `s3://` (s3fs, `pip install msfkit[s3]`), `gs://` (gcsfs), `hf://` (huggingface_hub),
`memory://` (fsspec's in-process store). An object store has no rename, so a write there is one
whole object, which readers see entirely or not at all; what makes a set of objects count is a
record written after them (see `msfkit.store.objects`).

Credentials come the way each library finds them (environment, profiles, `HF_TOKEN`).
`--storage-option KEY=VALUE` adds fsspec options: a dotted KEY nests (`client_kwargs.endpoint_url=`),
a VALUE is read as JSON when it is JSON (`true`, `3`, `{"a": 1}`), else kept as text. Every failure
of the storage itself (an unknown protocol, a missing package, no credentials, access denied, an
unreachable endpoint) is one `MsfkitError` line that names the URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_EXTRAS = {"s3": "msfkit[s3] (s3fs)", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError")
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionError")


def is_url(target: str | os.PathLike) -> bool:
    """Whether `target` is written as a URL (`PROTOCOL://...`) rather than a plain path."""
    return bool(_URL.match(os.fspath(target)))


def is_remote(target: str | os.PathLike) -> bool:
    """Whether `target` is a URL of storage other than the local disk (`file://` is the local disk)."""
    return is_url(target) and protocol(target) != "file"


def local_path(target: str | os.PathLike) -> str:
    """A plain path, or the path of a `file://` URL, as a path on the local disk."""
    text = os.fspath(target)
    return text[len("file://") :] if is_url(text) and protocol(text) == "file" else text


def protocol(target: str | os.PathLike) -> str:
    """The URL's protocol, lower case (`s3`, `memory`, ...); `file` for a plain path."""
    m = _URL.match(os.fspath(target))
    return m[1].lower() if m else "file"


def parse_storage_options(pairs: Sequence[str]) -> dict[str, Any]:
    """`["KEY=VALUE", ...]` (as `--storage-option` gives them) -> fsspec's keyword options."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        names = key.strip().split(".")
        if not sep or not all(names):
            raise MsfkitError(f"--storage-option {pair!r}: write KEY=VALUE (e.g. anon=true)")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        here = options
        for name in names[:-1]:
            here = here.setdefault(name, {})
            if not isinstance(here, dict):
                raise MsfkitError(f"--storage-option {pair!r}: {name} is set as a value and as a group")
        here[names[-1]] = value
    return options


def use_storage_options(options: dict[str, Any], targets: Sequence[str | os.PathLike]) -> None:
    """Make `options` the defaults of every filesystem opened from now on, in this process and the
    processes forked from it (decoding workers), for the protocols of the URLs among `targets`:
    fsspec's own configuration (`fsspec.config.conf`), which pyarrow and pandas go through too."""
    import fsspec.config  # optional extra: fsspec

    for proto in {protocol(t) for t in targets if is_url(t)}:
        fsspec.config.conf.setdefault(proto, {}).update(options)


@dataclass(frozen=True)
class Location:
    """One file, object or folder: the fsspec filesystem that holds it and its path there."""

    fs: Any  # an fsspec AbstractFileSystem
    path: str  # the filesystem's own path (no protocol)
    url: str  # as the user wrote it (extended by `child`): for messages and records

    @property
    def local(self) -> bool:
        """Whether this is the local disk, where files are renamed into place."""
        return "file" in _protocols(self.fs)

    def child(self, *names: str) -> Location:
        """The location `names` below this one (each a plain name, '/'-separated parts allowed)."""
        tail = "/".join(n.strip("/") for n in names)
        return Location(self.fs, f"{self.path.rstrip('/')}/{tail}", f"{self.url.rstrip('/')}/{tail}")

    def exists(self) -> bool:
        with storage_errors(self.url):
            self._forget_listing()
            return bool(self.fs.exists(self.path))

    def is_file(self) -> bool:
        """Whether this is a file or object (not a folder or prefix, and not missing)."""
        with storage_errors(self.url):
            self._forget_listing()
            return bool(self.fs.isfile(self.path))

    def read_bytes(self) -> bytes:
        """The whole file or object; a missing one is FileNotFoundError."""
        with storage_errors(self.url):
            return self.fs.cat_file(self.path)

    def write_bytes(self, data: bytes) -> None:
        """Replace the file or object with `data`, whole: readers see the old bytes or the new ones.
        A bucket (or, on disk, a parent that is a file) that is not there is one line."""
        with storage_errors(self.url):
            try:
                if self.local:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                    atomic_write(self.path, lambda tmp: tmp.write_bytes(data))
                else:
                    self.fs.pipe_file(self.path, data)
            except (FileNotFoundError, NotADirectoryError, FileExistsError) as e:
                raise MsfkitError(f"{self.url}: cannot write here ({_first_line(e)})") from None

    def listdir(self) -> list[str]:
        """The names right under this folder or prefix, sorted; none when there is no such folder."""
        with storage_errors(self.url):
            self._forget_listing()
            try:
                entries = self.fs.ls(self.path, detail=False)
            except FileNotFoundError:
                return []
        return sorted({e.rstrip("/").rsplit("/", 1)[-1] for e in entries} - {""})

    def find(self) -> list[str]:
        """Every file or object under this folder or prefix, at any depth, as '/'-separated names
        relative to it, sorted; none when there is no such folder."""
        with storage_errors(self.url):
            self._forget_listing()
            try:
                found = self.fs.find(self.path, detail=False)
            except FileNotFoundError:
                return []
        base = self.path.rstrip("/") + "/"
        return sorted(p[len(base) :] for p in found if p.startswith(base))

    def modified(self) -> float:
        """When the file or object was last written, in seconds since the epoch."""
        with storage_errors(self.url):
            return self.fs.modified(self.path).timestamp()

    def size(self) -> int:
        """The file's or object's size in bytes; a missing one is FileNotFoundError."""
        with storage_errors(self.url):
            self._forget_listing()
            return int(self.fs.size(self.path))

    def remove(self) -> None:
        """Delete the file or object, or everything under this folder or prefix; none there is fine."""
        with storage_errors(self.url), contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path, recursive=True)

    def open(self, mode: str = "rb"):
        """A file object (fsspec's) for streaming reads, e.g. to pyarrow."""
        with storage_errors(self.url):
            return self.fs.open(self.path, mode)

    def _forget_listing(self) -> None:
        """Another process may have written since this filesystem listed (s3fs caches listings)."""
        self.fs.invalidate_cache(self.path)


def locate(target: str | os.PathLike, options: dict[str, Any] | None = None) -> Location:
    """The `Location` of a plain path or URL, opened with fsspec `options` (see the module docstring)."""
    import fsspec  # optional extra: fsspec

    text = os.fspath(target)
    proto = protocol(text)
    if proto == "file":
        path = os.path.abspath(os.path.expanduser(local_path(text)))
        return Location(fsspec.filesystem("file"), path, text)
    with storage_errors(text):
        try:
            # a fresh instance: cached ones keep listings and options from another call
            fs, path = fsspec.core.url_to_fs(text, skip_instance_cache=True, **(options or {}))
        except ValueError as e:
            if "Protocol not known" in str(e):
                raise MsfkitError(f"{text}: unknown storage protocol {proto}://") from None
            raise MsfkitError(f"{text}: not a storage URL msfkit can open ({e})") from None
        except ImportError:
            need = _EXTRAS.get(proto, f"fsspec's {proto} package")
            raise MsfkitError(f"{text}: {proto}:// needs {need}; install it and run again") from None
    return Location(fs, path.rstrip("/") or path, text)


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn the storage's own failures into one line naming `url`; FileNotFoundError passes on."""
    try:
        yield
    except (MsfkitError, FileNotFoundError):
        raise
    except Exception as e:  # botocore, aiohttp, google-auth and fsspec raise their own types
        names = {cls.__name__ for cls in type(e).__mro__}
        if names & set(_NO_CREDENTIALS):
            raise MsfkitError(
                f"{url}: no credentials for {protocol(url)}:// (set them the usual way: environment "
                "variables or a profile; or --storage-option anon=true for a public bucket)"
            ) from None
        if names & set(_UNREACHABLE):
            raise MsfkitError(f"{url}: cannot reach the storage ({_first_line(e)})") from None
        if isinstance(e, TypeError) and "unexpected keyword argument" in str(e):  # a bad --storage-option
            raise MsfkitError(f"{url}: a storage option {protocol(url)}:// does not take ({e})") from None
        if isinstance(e, PermissionError):
            raise MsfkitError(f"{url}: access denied ({_first_line(e)})") from None
        if isinstance(e, OSError) and not isinstance(e, FileExistsError) and protocol(url) != "file":
            raise MsfkitError(f"{url}: storage error ({_first_line(e)})") from None
        raise


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
