"""An encoder for deployment: ONNX or TorchScript, with its preprocessing in a sidecar JSON.

    export_deployable(encoder, "encoder.onnx")   # + encoder.onnx.json
    export_deployable(encoder, "encoder.pt")     # TorchScript, + encoder.pt.json

The exported graph takes a float32 batch `pixels` (N, 3, S, S), RGB, already resized, centre-cropped
and normalised as the sidecar says (the `Preprocess` of the model's config), any N; it returns
`embedding` (N, D), L2-normalised: what `Encoder.embed` returns for the same images.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from msfkit._version import __version__
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write

FORMATS = {".onnx": "onnx", ".pt": "torchscript"}
ONNX_OPSET = 17


class _Deployed(nn.Module):
    """The backbone and the L2 normalisation, in eval mode: pixels -> unit embeddings."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone(pixels).float(), dim=1)


def deploy_format(out: str | os.PathLike, fmt: str | None = None) -> str | None:
    """ "onnx" or "torchscript" for an output named for one (or `fmt`), None for anything else."""
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise MsfkitError(f"unknown export format {fmt!r}; msfkit writes {', '.join(FORMATS.values())}")
        return fmt
    return FORMATS.get(Path(out).suffix.lower())


def export_deployable(encoder, out: str | os.PathLike, fmt: str | None = None) -> tuple[Path, Path]:
    """Write the encoder as ONNX or TorchScript to `out` and its sidecar JSON; returns both paths."""
    out = Path(out)
    fmt = deploy_format(out, fmt)
    if fmt is None:
        raise MsfkitError(f"{out}: cannot tell the format; name it .onnx or .pt, or pass --format")
    if out.is_dir():
        raise MsfkitError(f"{out}: is a folder; give a file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    c = encoder.config
    # a copy without gradients: the exported graph is for inference, and the encoder stays as it was
    model = _Deployed(copy.deepcopy(encoder.backbone)).eval().cpu().requires_grad_(False)
    example = torch.zeros(2, 3, c.image_size, c.image_size)
    with torch.no_grad():
        if fmt == "torchscript":
            graph = torch.jit.trace(model, example, check_trace=False)
            atomic_write(out, lambda tmp: torch.jit.save(graph, str(tmp)))
        else:
            atomic_write(out, lambda tmp: _onnx(model, example, tmp))
    sidecar = out.with_name(out.name + ".json")
    text = json.dumps(_sidecar(encoder, fmt), indent=1) + "\n"
    atomic_write(sidecar, lambda tmp: tmp.write_text(text))
    return out, sidecar


def _onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns that it is the old one
        torch.onnx.export(
            model, (example,), str(path), input_names=["pixels"], output_names=["embedding"],
            dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=ONNX_OPSET,
            dynamo=False,
        )  # fmt: skip


def _sidecar(encoder, fmt: str) -> dict[str, Any]:
    c = encoder.config
    return {
        "format": fmt,
        "opset": ONNX_OPSET if fmt == "onnx" else None,
        "input": {"name": "pixels", "dtype": "float32", "shape": ["batch", 3, c.image_size, c.image_size],
                  "layout": "NCHW, RGB"},
        "output": {"name": "embedding", "dtype": "float32", "shape": ["batch", c.embedding_dim],
                   "normalized": True},
        "preprocessing": {
            "steps": ["decode to 8-bit RGB (EXIF orientation applied, transparency over white)",
                      f"resize the shorter side to {c.resize} ({c.interpolation})",
                      f"centre-crop {c.image_size} x {c.image_size}", "scale to [0, 1]",
                      "subtract mean, divide by std, per channel"],
            "resize": c.resize, "interpolation": c.interpolation, "image_size": c.image_size,
            "mean": list(c.mean), "std": list(c.std),
        },
        "model": {"name": encoder.name, "fingerprint": encoder.fingerprint, "config": c.to_dict()},
        "msfkit_version": __version__,
    }  # fmt: skip
