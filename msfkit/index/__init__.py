"""faiss index folders: `plan` (which type fits), `build` and `add` (make one, add stores to one),
`fill` (rows into an index: batches or pieces), `pieces` and `distributed` (building in pieces, merged
on disk; pieces as Ray tasks), `recall` (tune and measure), `folder` (the format: open, validate),
`writing` (write, lock), `sources` (the stores an index holds), `faiss_ops` (devices, threads).

`build_index` and `add_to_index` are imported when first used: opening and searching a folder needs
neither them nor the pandas they load."""

from msfkit.index.folder import IndexFolder, open_folder

__all__ = ["IndexFolder", "add_to_index", "build_index", "open_folder"]


def __getattr__(name: str):
    if name == "build_index":
        from msfkit.index.build import build_index  # loads pandas

        return build_index
    if name == "add_to_index":
        from msfkit.index.add import add_to_index  # loads pandas

        return add_to_index
    raise AttributeError(f"module 'msfkit.index' has no attribute {name!r}")
