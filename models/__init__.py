"""What an encoder IS: backbones, MSF heads, the `Encoder` and its model folder.

Names load on first use, so `msfkit.models.errors` (and the CLI) can be imported without torch.
"""

import importlib

_EXPORTS = {
    "FEATURE_DIMS": "backbones",
    "build_backbone": "backbones",
    "feature_dim": "backbones",
    "Encoder": "encoder",
    "EncoderConfig": "config",
    "check_state_dict": "encoder",
    "push_folder": "encoder",
    "MsfkitError": "errors",
    "mlp": "heads",
    "prediction_head": "heads",
    "projection_head": "heads",
    "IMAGENET_MEAN": "config",
    "IMAGENET_STD": "config",
    "to_rgb": "preprocess",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"msfkit.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'msfkit.models' has no attribute {name!r}")
