"""msfkit: self-supervised image embeddings with MSF (Mean Shift, ICCV 2021).

    import msfkit
    encoder = msfkit.load("org/name@revision")   # or a model folder
    vectors = encoder.embed(images)
    store = msfkit.open_store("store")              # what `msfkit embed` wrote: .vectors, .meta

Importing msfkit is cheap; torch and faiss load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msfkit._version import __version__

if TYPE_CHECKING:
    from msfkit.models import Encoder
    from msfkit.store.reader import Store

__all__ = ["__version__", "load", "open_store"]


def load(name: str) -> Encoder:
    """An encoder from a model folder or a Hub id `org/name[@revision]`, loaded strictly, in eval mode."""
    from msfkit.models import Encoder

    return Encoder.from_pretrained(name)


def open_store(path) -> Store:
    """An embedding store (or several, or a folder of `--shard` parts) read as one."""
    from msfkit.store.reader import open_store as _open_store

    return _open_store(path)
