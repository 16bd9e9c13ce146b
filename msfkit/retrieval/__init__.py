"""Using an index: `search` (queries -> neighbours), `dedup` (near-duplicate groups), `render`
(contact sheets and HTML galleries), `index` (the `Index` object the public API returns)."""

from msfkit.retrieval.index import Index, open_index

__all__ = ["Index", "open_index"]
