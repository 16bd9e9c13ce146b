"""The encoders at hand, read without torch: model folders given, and msfkit models in the local
Hugging Face cache (`msfkit models list`); the evaluation results their cards hold."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

from msfkit.models.card import RESULTS_BEGIN, RESULTS_END
from msfkit.models.config import fingerprint, read_config
from msfkit.models.errors import MsfkitError
from msfkit.models.hub import resolve_model_dir

CONFIG_NAME = "config.json"
CARD_NAME = "README.md"


def describe(folder: str | os.PathLike, name: str | None = None) -> dict[str, Any] | None:
    """arch, dim, network, image size, provenance and card results of an msfkit model folder; None
    when `folder` is not one (no config.json, or a config.json of another library)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or "format_version" not in config or "arch" not in config:
        return None
    provenance = config.get("provenance") if isinstance(config.get("provenance"), dict) else {}
    card = folder / CARD_NAME
    return {
        "model": name or str(folder),
        "arch": config.get("arch"),
        "stem": config.get("stem"),
        "dim": config.get("embedding_dim"),
        "network": config.get("network"),
        "image_size": config.get("image_size"),
        "method": provenance.get("method"),
        "k": provenance.get("k"),
        "epochs": provenance.get("epochs"),
        "data": provenance.get("data"),
        "results": card_results(card.read_text(errors="replace")) if card.is_file() else [],
    }


def card_results(card: str) -> list[dict[str, Any]]:
    """The rows of the results table `msfkit eval --card` wrote: protocol, k, top-1 (and top-5)."""
    start, end = card.find(RESULTS_BEGIN), card.find(RESULTS_END)
    if start == -1 or end == -1:
        return []
    rows = []
    for line in card[start:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or cells[0] in ("protocol", "") or set(cells[0]) <= {"-"}:
            continue
        try:
            top1 = float(cells[5])
        except ValueError:
            continue
        rows.append({"protocol": cells[0], "k": None if cells[1] == "-" else cells[1], "top1": top1})
    return rows


def cached_models() -> list[dict[str, Any]]:
    """msfkit model folders in the local Hugging Face cache (HF_HOME / HF_HUB_CACHE), one per revision."""
    from huggingface_hub import scan_cache_dir  # loads the Hub client: only `msfkit models list`
    from huggingface_hub.errors import CacheNotFound  # loads the Hub client

    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return []
    found = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.commit_hash):
            record = describe(revision.snapshot_path, f"{repo.repo_id}@{revision.commit_hash[:12]}")
            if record is not None:
                found.append(record)
    return found


def model_info(name: str | os.PathLike) -> dict[str, Any]:
    """What `msfkit models info` shows, read without torch: the config (checked), where it came from,
    the parameter count and the fingerprint (the same as `Encoder.fingerprint`, from the weights file)."""
    directory, revision = resolve_model_dir(str(name))
    config_path, weights_path = directory / CONFIG_NAME, directory / "model.safetensors"
    for p in (config_path, weights_path):
        if not p.is_file():
            raise MsfkitError(f"{name}: not a model folder (no {p.name})")
    config = read_config(config_path)
    try:
        tensors = load_file(str(weights_path))
    except Exception as e:  # a damaged or foreign file; safetensors raises its own types
        raise MsfkitError(f"{weights_path}: unreadable weights ({type(e).__name__})") from None
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    params = sum(int(a.size) for k, a in tensors.items() if not k.endswith(buffers))
    digest = fingerprint(config, ((k, np.ascontiguousarray(a)) for k, a in tensors.items()))
    return {"model": str(name), "revision": revision, "fingerprint": digest, "parameters": params,
            **config.to_dict()}  # fmt: skip
