"""faiss index folders: `plan` (which type fits), `build` (build, add), `recall` (tune and measure),
`folder` (the format: load, validate, write), `faiss_ops` (devices, threads, parameters)."""

from msfkit.index.build import add_to_index, build_index
from msfkit.index.folder import IndexFolder, open_folder

__all__ = ["IndexFolder", "add_to_index", "build_index", "open_folder"]
