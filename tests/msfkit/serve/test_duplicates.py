"""msfkit.serve.duplicates: what the duplicates view keeps between requests."""

from __future__ import annotations

import pytest

from msfkit.serve.backend import Backend


@pytest.mark.slow
def test_the_auto_threshold_is_measured_once_then_kept(photo_index):
    backend = Backend.open(photo_index[0])
    first = backend.auto_threshold()
    assert first["threshold"] is not None and first["images"] == 21
    assert backend.auto_threshold() is first  # the same answer, not measured again
