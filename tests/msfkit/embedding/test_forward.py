"""msfkit.embedding.forward: the compiled CPU path (bf16 here; fp32 in test_pipeline.py) gives eager's
vectors, keeps one graph for every batch size, is never served to another model, and falls back to
eager in one line when it cannot compile. One compile for the whole module."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from torch._dynamo.utils import counters

from msfkit.embedding.forward import Forward
from msfkit.models import Encoder, to_rgb
from msfkit.models.runtime import cpu_has_fast_bf16
from tests.msfkit.index_stores import calibrated_model

BATCH = 8  # 20 photos: batches of 8, 8 and a short 4

pytestmark = pytest.mark.slow  # compiling a ResNet18 takes seconds


@pytest.fixture(scope="module")
def encoder(photo_paths, tmp_path_factory) -> Encoder:
    """A ResNet18 at 32 px whose batch norms saw the photos: distinct photos give distinct vectors."""
    if not cpu_has_fast_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 or AMX): compiled bf16 takes minutes here")
    model = Encoder.from_pretrained(calibrated_model(photo_paths, tmp_path_factory.mktemp("model")))
    return model.eval().to(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def crops(encoder, photo_paths) -> torch.Tensor:
    """uint8 (20, 3, 32, 32) centre crops of real photos, as the decoding workers send them."""
    return torch.stack([encoder.preprocess.crop(to_rgb(Image.open(p))) for p in photo_paths[:20]])


@pytest.fixture(scope="module")
def compiled(encoder, crops):
    """(the compiled bf16 Forward, its rows for the crops batch by batch, dynamo graphs made by the
    first batch, graphs made by the rest)."""
    forward = Forward(encoder, "bf16", BATCH, compiled=True)
    start = counters["stats"]["unique_graphs"]
    rows = [forward(crops[:BATCH])]
    first = counters["stats"]["unique_graphs"] - start
    rows += [forward(part) for part in crops[BATCH:].split(BATCH)]
    return forward, np.concatenate(rows), first, counters["stats"]["unique_graphs"] - start - first


def test_compiled_bf16_gives_eagers_vectors(compiled, encoder, crops):
    forward, rows, _, _ = compiled
    assert forward.compiled  # it ran compiled, not through the fallback
    eager = Forward(encoder, "bf16", BATCH)(crops)
    assert rows.shape == eager.shape == (20, 512)
    assert (rows * eager).sum(1).min() >= 0.999
    fp32 = Forward(encoder, "fp32", BATCH)(crops)
    assert (rows * fp32).sum(1).min() >= 0.99
    assert np.abs(rows @ rows.T - np.eye(20)).max() > 0.01  # distinct photos: the check above has teeth


def test_the_short_last_batch_is_padded_not_recompiled(compiled, crops):
    forward, rows, first, rest = compiled
    assert first == 1 and rest == 0
    with torch.compiler.set_stance("fail_on_recompile"):
        three = forward(crops[:3])
    np.testing.assert_array_equal(three, rows[:3])


def test_weights_changed_since_are_never_served_the_frozen_graph_and_a_failed_compile_runs_eagerly(
    compiled, encoder, crops, capsys
):
    """The compiled graph holds the weights folded in as they were (the k-NN monitor embeds with a
    model that trains on between calls). A new Forward of the same model, trained further in place,
    needs its own compile: refused here (`fail_on_recompile`, as a compile can fail), so it runs
    eagerly after one line on stderr, with the weights it has now."""
    saved = copy.deepcopy(encoder.state_dict())
    try:
        with torch.no_grad():
            for p in encoder.parameters():
                p.mul_(1.1)
        forward = Forward(encoder, "bf16", BATCH, compiled=True)
        with torch.compiler.set_stance("fail_on_recompile"):
            rows = forward(crops[:BATCH])
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            "msfkit: compiling the model failed, running it eagerly ("
        )
        assert not forward.compiled
        np.testing.assert_allclose(rows, Forward(encoder, "bf16", BATCH)(crops[:BATCH]), atol=1e-6)
        assert np.abs(rows - compiled[1][:BATCH]).max() > 1e-3  # the weights before give other vectors
    finally:
        encoder.load_state_dict(saved)
