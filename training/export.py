"""Checkpoints -> model folders: msfkit training runs, the reference MSF code's layout, torchvision ResNets.

An msfkit run folder (or its checkpoint.pt) exports the online (or target) backbone with the
run's preprocessing and a provenance that records method, k, bank size, augmentation, epochs
and data; `msfkit train` writes the same folder to RUN/model at the end.

Files are read with `torch.load(weights_only=True)`. The only class allow-listed is
`argparse.Namespace`, which the reference code pickles under `opt`; any other object in the
file makes the load fail before anything of it runs.

Reference layout (UMBCvision/MSF, every module wrapped in DataParallel):
    encoder_q.module.{conv1,bn1,layer1..4}.*  online backbone   encoder_q.module.fc.*  projection
    encoder_t.module.*                        target network    predict_q.module.*     prediction
    queue, labels, queue_ptr                  memory bank
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from msfkit.models import Encoder, EncoderConfig
from msfkit.models.config import default_resize
from msfkit.models.encoder import check_state_dict
from msfkit.models.errors import MsfkitError
from msfkit.training.checkpoint import (
    check_checkpoint,
    find_checkpoint,
    is_training_checkpoint,
    safe_torch_load,
)
from msfkit.training.config import TrainConfig, saved_config

PREFIXES = {"online": "encoder_q.module.", "target": "encoder_t.module."}
LAYOUTS = (
    "reference MSF checkpoint ('state_dict' with encoder_q.module.* / encoder_t.module.*), "
    "torchvision ResNet state dict (conv1.weight, layer1.*, ...)"
)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint dict, read with weights_only=True and only argparse.Namespace admitted."""
    obj = safe_torch_load(path, allow=(argparse.Namespace,))
    if not isinstance(obj, dict):
        raise MsfkitError(f"{path}: holds a {type(obj).__name__}, not a checkpoint dict; expected {LAYOUTS}")
    return obj


def backbone_state(ckpt: dict[str, Any], network: str = "online") -> tuple[dict[str, torch.Tensor], str]:
    """(backbone state dict with torchvision names, layout name) from a loaded checkpoint."""
    if network not in PREFIXES:
        raise MsfkitError(f"network must be 'online' or 'target', not {network!r}")
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict):
        raise MsfkitError(f"'state_dict' is a {type(state).__name__}; expected {LAYOUTS}")
    keys = [k for k in state if isinstance(k, str)]
    if any(k.startswith(("encoder_q.", "encoder_t.")) for k in keys):
        prefix = PREFIXES[network]
        if not any(k.startswith(prefix) for k in keys):
            # tolerate checkpoints saved without DataParallel (encoder_q.conv1.weight)
            prefix = prefix.replace("module.", "")
        out = {
            k[len(prefix) :]: v
            for k, v in state.items()
            if k.startswith(prefix) and not k[len(prefix) :].startswith("fc.")
        }
        return out, "reference-msf"
    if network != "online":
        raise MsfkitError("--network target needs a checkpoint that holds a target network (encoder_t.*)")
    stripped = {k.removeprefix("module."): v for k, v in state.items() if isinstance(k, str)}
    if "conv1.weight" in stripped and any(k.startswith("layer4.") for k in stripped):
        return {k: v for k, v in stripped.items() if not k.startswith("fc.")}, "torchvision"
    shown = ", ".join(sorted(keys)[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
    raise MsfkitError(f"unknown checkpoint layout (keys: {shown or 'none'}); expected {LAYOUTS}")


def infer_arch(state: dict[str, torch.Tensor]) -> tuple[str, str]:
    """(arch, stem) from backbone tensor names and shapes."""
    bottleneck = "layer1.0.conv3.weight" in state
    blocks = len({k.split(".")[1] for k in state if k.startswith("layer3.")})
    table = {(False, 2): "resnet18", (False, 6): "resnet34", (True, 6): "resnet50", (True, 23): "resnet101"}
    arch = table.get((bottleneck, blocks))
    if arch is None:
        raise MsfkitError(f"unsupported ResNet depth ({blocks} blocks in layer3, bottleneck={bottleneck})")
    conv1 = state.get("conv1.weight")
    stem = "cifar" if conv1 is not None and conv1.shape[-1] == 3 else "imagenet"
    return arch, stem


def reference_provenance(ckpt: dict[str, Any], layout: str, source: str) -> dict[str, Any]:
    """Method, k, bank size, epochs and augmentation as far as the checkpoint records them."""
    prov: dict[str, Any] = {"source": source, "layout": layout}
    opt = ckpt.get("opt")
    if layout == "reference-msf":
        prov["method"] = "msf"
    if isinstance(opt, argparse.Namespace):
        o = vars(opt)
        for ours, theirs in [
            ("k", "topk"),
            ("bank_size", "mem_bank_size"),
            ("ema_momentum", "momentum"),
            ("epochs", "epochs"),
            ("lr", "learning_rate"),
            ("batch_size", "batch_size"),
        ]:
            if isinstance(o.get(theirs), int | float | str):
                prov[ours] = o[theirs]
        if isinstance(o.get("augmentation"), str):
            prov["augmentation"] = o["augmentation"]
        elif o.get("weak_strong"):
            prov["augmentation"] = "weak/strong"
    if isinstance(ckpt.get("epoch"), int):
        prov["epochs_trained"] = ckpt["epoch"]
    return prov


def export_checkpoint(
    path: str | Path,
    out: str | Path,
    *,
    network: str = "online",
    image_size: int | None = None,
    resize: int | None = None,
) -> Encoder:
    """Convert a checkpoint file (or an msfkit run folder) to a model folder at `out`; returns the encoder.

    `image_size` and `resize` replace the preprocessing the checkpoint implies (for a reference
    checkpoint: 224, or 32 for a cifar stem; resize by `default_resize`). The config is checked
    whole, with them, before anything is written.
    """
    path = find_checkpoint(path)
    ckpt = read_checkpoint(path)
    if is_training_checkpoint(ckpt):
        check_checkpoint(ckpt, path)
        sizes = {"image_size": image_size, "resize": resize}
        return export_training_checkpoint(ckpt, out, network=network, source=path, **sizes)
    state, layout = backbone_state(ckpt, network)
    arch, stem = infer_arch(state)
    if image_size is None:
        image_size = 32 if stem == "cifar" else 224
    config = EncoderConfig(
        arch=arch,
        stem=stem,
        network=network,
        image_size=image_size,
        resize=default_resize(image_size) if resize is None else resize,
        provenance=reference_provenance(ckpt, layout, Path(path).name),
    )
    return _write_model_folder(config, state, out, source=str(path))


def _write_model_folder(
    config: EncoderConfig, state: dict[str, torch.Tensor], out: str | Path, source: str
) -> Encoder:
    """The model folder of a checked `config` and a backbone `state` that must fit it key for key."""
    encoder = Encoder(config)
    check_state_dict(state, encoder.backbone.state_dict(), source=source)
    encoder.backbone.load_state_dict(state)
    encoder.save_pretrained(out)
    return encoder.eval()


def encoder_config(
    cfg: TrainConfig,
    network: str = "online",
    provenance: dict[str, Any] | None = None,
    *,
    image_size: int | None = None,
    resize: int | None = None,
) -> EncoderConfig:
    """The model-folder config of a run: its architecture and its eval preprocessing, checked.

    The run's image size, evaluated by the one default rule (`default_resize`: whole up to 64 px,
    as trained; larger the ImageNet way, Resize(size x 256/224) -> CenterCrop(size)); `image_size`
    and `resize` replace them (`msfkit export --image-size/--resize`).
    """
    image_size = cfg.image_size if image_size is None else image_size
    return EncoderConfig(
        arch=cfg.arch,
        stem=cfg.stem,
        network=network,
        image_size=image_size,
        resize=default_resize(image_size) if resize is None else resize,
        provenance=provenance or {},
    )


def run_provenance(
    cfg: TrainConfig, step: int, steps_per_epoch: int, metrics: dict[str, Any]
) -> dict[str, Any]:
    """What a model folder records about the run that made it."""
    prov: dict[str, Any] = {
        "source": "msfkit train",
        "method": cfg.method,
        "k": cfg.k,
        "bank_size": cfg.bank_size,
        "augmentation": cfg.augmentation,
        "epochs": cfg.epochs,
        "epochs_trained": round(step / steps_per_epoch, 3),
        "steps": step,
        "data": cfg.data,
        "images": steps_per_epoch * cfg.batch_size,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "ema": cfg.ema,
        "ema_schedule": cfg.ema_schedule,
        "seed": cfg.seed,
    }
    if "knn" in metrics:  # the training monitor's last k-NN (msf protocol), on the subsets it used
        prov["knn_monitor"] = {
            **metrics["knn"],
            "top1": round(metrics["knn"]["top1"], 2),
            "data": cfg.val_data,
        }
        if "knn_random_init" in metrics:  # the same monitor at step 0 (knn_at_start): the baseline
            prov["knn_monitor"]["random_init_top1"] = round(metrics["knn_random_init"]["top1"], 2)
    if "init" in metrics:  # init=MODEL: the weights the run started from
        prov["init"] = metrics["init"]
    if metrics.get("bad_files"):  # unreadable training images skipped (RUN/bad_files.csv)
        prov["bad_files"] = metrics["bad_files"]
    return prov


def export_model(
    model: torch.nn.Module,
    cfg: TrainConfig,
    out: str | Path,
    *,
    step: int,
    steps_per_epoch: int,
    metrics: dict[str, Any],
    network: str = "online",
) -> Path:
    """Save `model.online.backbone` (or the target's) of a live MSF module as a model folder."""
    config = encoder_config(cfg, network, run_provenance(cfg, step, steps_per_epoch, metrics))
    encoder = Encoder(config)
    encoder.backbone.load_state_dict(getattr(model, network).backbone.state_dict())
    return encoder.save_pretrained(out)


def export_training_checkpoint(
    ckpt: dict[str, Any],
    out: str | Path,
    *,
    network: str = "online",
    image_size: int | None = None,
    resize: int | None = None,
    source: str | Path = "training checkpoint",
) -> Encoder:
    """A loaded msfkit training checkpoint (checked: `check_checkpoint`) -> model folder at `out`."""
    if network not in PREFIXES:
        raise MsfkitError(f"network must be 'online' or 'target', not {network!r}")
    cfg = saved_config(ckpt["config"], source)
    prov = run_provenance(cfg, ckpt["step"], ckpt["steps_per_epoch"], ckpt.get("metrics", {}))
    config = encoder_config(cfg, network, prov, image_size=image_size, resize=resize)
    prefix = f"{network}.backbone."
    state = {k[len(prefix) :]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
    where = f"{source}: training checkpoint field 'model' ({network} backbone)"
    return _write_model_folder(config, state, out, source=where)
