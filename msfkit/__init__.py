"""msfkit: self-supervised image embeddings with MSF (Mean Shift, ICCV 2021).

    import msfkit
    encoder = msfkit.load("org/name@revision")   # or a model folder
    vectors = encoder.embed(images)

Importing msfkit is cheap; torch loads on first use of `load`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msfkit._version import __version__

if TYPE_CHECKING:
    from msfkit.models import Encoder

__all__ = ["__version__", "load"]


def load(name: str) -> Encoder:
    """An encoder from a model folder or a Hub id `org/name[@revision]`, loaded strictly, in eval mode."""
    from msfkit.models import Encoder

    return Encoder.from_pretrained(name)
