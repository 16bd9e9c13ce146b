"""The embedding store: a folder of `.npy` vector shards beside parquet metadata (docs/formats.md).

`format` names the files and checks the manifest, `writer` commits shards, `reader` reads them
back as one `Store`. No other code opens a store's files.
"""

from msfkit.store.reader import Store, is_store, open_store

__all__ = ["Store", "is_store", "open_store"]
