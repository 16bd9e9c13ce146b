"""`msfkit.models.identity`: one fingerprint check, one message shape, for encoders and model records."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from msfkit.models import Encoder
from msfkit.models.errors import MsfkitError
from msfkit.models.identity import check_same_model, describe_model


def test_an_encoder_matches_the_record_of_its_own_folder_only(tiny_model_dir):
    encoder = Encoder.from_pretrained(tiny_model_dir)
    record = {"name": str(tiny_model_dir), "fingerprint": encoder.fingerprint, "config": {}}
    check_same_model(encoder, record, "the model", "the store", "embed again")
    check_same_model(SimpleNamespace(**record), encoder, "a typed record", "the model", "embed again")
    other = {"name": None, "fingerprint": "0123456789abcdef"}
    with pytest.raises(MsfkitError) as e:
        check_same_model(other, encoder, "the store S", "the index I", "rebuild it")
    assert str(e.value) == (
        "the store S and the index I come from different models: fingerprint 0123456789abcdef and "
        f"{describe_model(encoder)}; rebuild it"
    )
    assert describe_model(encoder) == f"{encoder.name} (fingerprint {encoder.fingerprint})"


def test_a_missing_fingerprint_matches_nothing():
    with pytest.raises(MsfkitError, match="fingerprint None and fingerprint None"):
        check_same_model({"name": None}, {}, "a", "b", "fix")
