"""faiss index folders: `plan` (which type fits), `build` and `add` (make one, add stores to one),
`fill` (rows into an index: batches or pieces), `pieces` and `distributed` (building in pieces, merged
on disk; pieces as Ray tasks), `recall` (tune and measure), `folder` (the format: open, validate),
`writing` (write, lock), `sources` (the stores an index holds), `faiss_ops` (devices, threads)."""

from msfkit.index.add import add_to_index
from msfkit.index.build import build_index
from msfkit.index.folder import IndexFolder, open_folder

__all__ = ["IndexFolder", "add_to_index", "build_index", "open_folder"]
