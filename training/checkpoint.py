"""Training checkpoints: everything needed to continue a run bit for bit, written atomically.

A checkpoint is one `torch.save`d dict of plain containers and tensors only, so it loads with
`torch.load(weights_only=True)` and no class needs allow-listing:

    format, version   "msfkit-train", 1
    model             MSF state dict: online.*, predictor.*, target.*, bank.{vectors,labels,ptr}
    optimizer         SGD state dict
    step, epoch       optimiser steps done; epochs started (a mid-epoch checkpoint resumes mid-epoch)
    steps_per_epoch   to refuse resuming with a different dataset or batch size
    config            TrainConfig as a dict
    rng               torch CPU (and CUDA) generator states
    metrics           last logged values (loss, knn) and the init=MODEL record, for the model card

The file is written to a temporary name and renamed, so a run killed while saving keeps the
previous checkpoint whole.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from msfkit.models.encoder import check_state_dict
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write

FORMAT = "msfkit-train"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically write `state` (plus format, version and RNG states) to `path`."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    payload = {"format": FORMAT, "version": VERSION, **state, "rng": rng}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))  # a full disk: one line, no partial file


def safe_torch_load(path: str | Path, allow: tuple[type, ...] = ()) -> Any:
    """`torch.load(weights_only=True)` with only the classes in `allow` admitted; one-line errors.

    Any other pickled object (a class, a function call) makes the load fail before it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise MsfkitError(f"{path}: no such file")
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=not allow)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported object"
        admitted = "".join(f" and {c.__module__}.{c.__name__}" for c in allow)
        raise MsfkitError(f"{path}: refused: holds objects other than tensors{admitted} ({first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise MsfkitError(f"{path}: not a PyTorch checkpoint ({' '.join(str(e).split())[:120]})") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint with weights_only=True and check its fields; errors are one line."""
    ckpt = safe_torch_load(path)
    if not is_training_checkpoint(ckpt):
        raise MsfkitError(f"{path}: not an msfkit training checkpoint")
    return check_checkpoint(ckpt, path)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_dict(v: Any, keys: tuple[str, ...] = ()) -> bool:
    return isinstance(v, dict) and all(k in v for k in keys)


def _byte_tensor(v: Any) -> bool:
    return isinstance(v, torch.Tensor) and v.dtype == torch.uint8


def _tensors(v: Any) -> bool:
    return _is_dict(v) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())


# field -> (what it must be, a test); `metrics` may be absent (checkpoints of older runs)
FIELDS: dict[str, tuple[str, Any]] = {
    "version": ("an int", _is_int),
    "model": ("a dict of tensors", _tensors),
    "optimizer": ("an optimizer state dict", lambda v: _is_dict(v, ("state", "param_groups"))),
    "step": ("an int >= 0", lambda v: _is_int(v) and v >= 0),
    "epoch": ("an int >= 0", lambda v: _is_int(v) and v >= 0),
    "steps_per_epoch": ("an int >= 1", lambda v: _is_int(v) and v >= 1),
    "config": ("a dict of config keys", lambda v: _is_dict(v) and all(isinstance(k, str) for k in v)),
    "rng": ("a dict with a 'torch' generator state", lambda v: _is_dict(v) and _byte_tensor(v.get("torch"))),
    "metrics": ("a dict", _is_dict),
}


def check_checkpoint(ckpt: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """`ckpt` if every field has the type a resume or an export relies on; else an error that
    names the file and the first bad field. The one place both `train --resume` and `export` check."""
    for field, (expected, ok) in FIELDS.items():
        if field not in ckpt:
            if field == "metrics":
                continue
            raise MsfkitError(f"{path}: training checkpoint field {field!r} is missing")
        value = ckpt[field]
        if not ok(value):
            got = f"a {type(value).__name__}"
            if isinstance(value, str | int | float):
                got += f" ({repr(value)[:40]})"
            raise MsfkitError(f"{path}: training checkpoint field {field!r} is {got}; expected {expected}")
    if ckpt["version"] != VERSION:
        raise MsfkitError(f"{path}: checkpoint version {ckpt['version']}; this msfkit reads {VERSION}")
    return ckpt


def is_training_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def resume_run(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """Load the checkpoint at `path` into `model`, `optimizer` and the RNGs; returns (step, metrics)."""
    ckpt = load_checkpoint(path)
    if ckpt["steps_per_epoch"] != steps_per_epoch:
        raise MsfkitError(
            f"{path}: saved with {ckpt['steps_per_epoch']} steps per epoch, this data and batch "
            f"size give {steps_per_epoch}; resume with the run's data and batch_size"
        )
    check_state_dict(ckpt["model"], model.state_dict(), source=f"{path}: training checkpoint field 'model'")
    model.load_state_dict(ckpt["model"])
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        first = " ".join(str(e).split())[:160]
        raise MsfkitError(
            f"{path}: training checkpoint field 'optimizer' does not fit this run ({first})"
        ) from None
    restore_rng(ckpt["rng"])
    return ckpt["step"], dict(ckpt.get("metrics", {}))


def restore_rng(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def find_checkpoint(run_or_file: str | Path) -> Path:
    """A checkpoint file, or the latest checkpoint of a run folder."""
    p = Path(run_or_file)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
        if not p.is_file():
            raise MsfkitError(f"{run_or_file}: no {CHECKPOINT_NAME} in this run folder")
    return p
