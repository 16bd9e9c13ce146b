"""msfkit.serve.backend: uploaded images are embedded as the collection was."""

from __future__ import annotations

import pytest
from PIL import Image

import msfkit
from msfkit.embedding import EmbedOptions, embed_items
from msfkit.models.runtime import cpu_has_fast_bf16
from msfkit.serve.backend import Backend


@pytest.mark.slow
def test_uploads_to_a_bf16_index_are_embedded_in_bf16_and_find_their_own_rows(
    photos_dir, tiny_model_dir, tmp_path
):
    """A stored photo uploaded as a query comes back first at similarity 1 (to the 6 decimals served):
    the upload went through the store's precision, not float32, which would land measurably off."""
    if not cpu_has_fast_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 or AMX): a bf16 store takes minutes here")
    store = msfkit.embed(photos_dir, tiny_model_dir, tmp_path / "store", workers=0, precision="bf16")
    msfkit.build_index(store, tmp_path / "index", kind="flat")
    backend = Backend.open(tmp_path / "index")
    names = list(store.meta["path"])
    found = backend.search_images([(name, Image.open(photos_dir / name)) for name in names], limit=1)
    firsts = [q["results"][0] for q in found["queries"]]
    assert [hit["row"] for hit in firsts] == list(range(len(names)))
    assert min(hit["score"] for hit in firsts) >= 0.999999
    fp32, _ = embed_items(msfkit.load(tiny_model_dir), [str(photos_dir / n) for n in names], EmbedOptions())
    assert (fp32 * store.vectors).sum(1).min() < 0.999999  # float32 queries would not score 1
