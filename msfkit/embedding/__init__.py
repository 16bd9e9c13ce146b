"""Images -> vectors: `pipeline` (the one embedding loop, over `decode` and `forward`), `plan` (which
store shards hold which files), `run` (a resumable, sharded run that writes an embedding store)
and `ray_engine` (its shards embedded by Ray workers, committed by the driver).

Named `embedding`, not `embed`: `msfkit.embed` is the public function, and a subpackage of that
name would replace it as an attribute of `msfkit` as soon as it was imported.
"""

from msfkit.embedding.pipeline import EmbedOptions, embed_items
from msfkit.embedding.plan import StoreOptions
from msfkit.embedding.run import embed
from msfkit.embedding.summary import EmbedSummary

__all__ = ["EmbedOptions", "EmbedSummary", "StoreOptions", "embed", "embed_items"]
