"""The embedding store: a folder of `.npy` vector shards beside parquet metadata (docs/formats.md).

`format` names the files and checks the manifest, `writer` commits shards, `reader` reads them
back as one `Store`; `objects`, `pull` and `remote` keep a store at a URL (object storage) as
whole objects and commit records, read and written through a local copy. No other code opens a
store's files.
"""

from msfkit.store.reader import Store, is_store, open_store

__all__ = ["Store", "is_store", "open_store"]
