"""Embedding runs as the tests want them: `msfkit.embed` (the public API) returning the run's summary."""

from __future__ import annotations

import msfkit
from msfkit.embedding import EmbedOptions, embed_items


def embed(inputs, model, out, **options):
    """The EmbedSummary of `msfkit.embed(inputs, model, out, **options)`."""
    return msfkit.embed(inputs, model, out, **options).run


def embed_files(encoder, paths, **options):
    """(vectors, [(path, reason)]) of image files, nothing written."""
    vectors, bad = embed_items(encoder, [str(p) for p in paths], EmbedOptions(**options))
    return vectors, [(str(paths[i]), reason) for i, reason in bad]
