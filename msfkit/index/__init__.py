"""faiss index folders: `plan` (which type fits), `build` and `add` (make one, add stores to one),
`fill` (rows into an index: batches or pieces), `pieces` and `distributed` (building in pieces, merged
on disk; pieces as Ray tasks), `recall` (tune and measure), `folder` (the format: open, validate),
`writing` (write, lock), `sources` (the stores an index holds), `faiss_ops` (devices, threads).

The names below load their module when first used: opening and searching a folder (`folder`) needs
neither pandas nor the build code, and a one-query `msfkit search` should not pay for them."""

import importlib

_HOMES = {
    "IndexFolder": "msfkit.index.folder",
    "open_folder": "msfkit.index.folder",
    "add_to_index": "msfkit.index.add",
    "build_index": "msfkit.index.build",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'msfkit.index' has no attribute {name!r}")
