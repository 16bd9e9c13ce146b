"""Which model made a vector: the one check that two things come from the same encoder.

An `Encoder`, and the model record a store or an index keeps ({"name", "revision", "fingerprint",
"config"}), name their model by its fingerprint (`msfkit.models.config.fingerprint`): vectors of
two models never mix, so every room that puts them together calls `check_same_model`.

    check_same_model(store.model, index.model, f"store {path}", f"index {root}", "embed it again")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msfkit.models.errors import MsfkitError


def model_fingerprint(model: Any) -> str | None:
    """The fingerprint of an `Encoder` or of a model record (a mapping or an object with attributes)."""
    return _field(model, "fingerprint")


def describe_model(model: Any) -> str:
    """'NAME (fingerprint F)', or 'fingerprint F' for a model without a loadable name."""
    name = _field(model, "name")
    fingerprint = f"fingerprint {model_fingerprint(model)}"
    return f"{name} ({fingerprint})" if name else fingerprint


def check_same_model(a: Any, b: Any, a_what: str, b_what: str, fix: str) -> None:
    """Raise the one-line `MsfkitError` "A_WHAT and B_WHAT come from different models: ...; FIX"
    unless `a` and `b` (encoders or model records) have one fingerprint. A missing fingerprint
    matches nothing."""
    fingerprint = model_fingerprint(a)
    if fingerprint is None or fingerprint != model_fingerprint(b):
        raise MsfkitError(
            f"{a_what} and {b_what} come from different models: {describe_model(a)} and "
            f"{describe_model(b)}; {fix}"
        )


def _field(model: Any, key: str) -> Any:
    return model.get(key) if isinstance(model, Mapping) else getattr(model, key, None)
