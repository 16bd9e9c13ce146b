"""`msfkit eval`: the k-NN and linear protocols of MSF on a model's features, each number named by protocol.

inputs, encoder = load_inputs(model="my-model", dataset="fashion-mnist")   # msfkit.eval.inputs
report, predictions = evaluate(inputs, knn_protocols=("msf", "dino"), linear_preset="fast")
print(format_table(report))                                               # msfkit.eval.report
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msfkit._version import __version__
from msfkit.data.datasets import Subset
from msfkit.eval.inputs import EvalInputs
from msfkit.eval.knn import DEFAULT_KS, knn_scores
from msfkit.eval.labels import class_indices, sample_per_class
from msfkit.eval.linear import (
    FAST_LRS,
    PRESETS,
    LinearRecipe,
    evaluate_head,
    standardization,
    train_linear_fast,
    train_linear_msf,
    train_transform,
)
from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import resolve_precision

KNN_CURVE_KS = (1, 2, 5, 10, 20, 50, 100, 200)


@dataclass
class EvalOptions:
    """Which protocols run, and how (every field has the paper's or msfkit's default)."""

    knn_protocols: Sequence[str] = ("msf",)  # k-NN protocols: "msf", "dino"; () for none
    ks: Sequence[int] | None = None  # None: the protocol's own (msf 1, 20; dino 20)
    temperature: float = 0.07  # dino's vote weight exp(sim / T)
    linear_preset: str | None = None  # "fast" | "msf" | None (no linear probe)
    lrs: Sequence[float] | None = None  # fast: the sweep; msf: one lr
    epochs: int = 40
    train_fraction: float | None = None  # per-class share of train labels (semi-supervised rows)
    head_out: str | Path | None = None  # save the linear head here
    curve_ks: Sequence[int] = ()  # more k for the k-NN predictions (the accuracy-over-k plot), no rows
    device: str = "cpu"
    memory_budget_bytes: int | None = None  # the largest k-NN similarity block
    batch_size: int = 256
    workers: int = 0
    precision: str = "fp32"  # or "bf16", or "auto": resolved for `device` when the options are made
    seed: int = 0
    progress: bool = False
    announce: bool = False  # a long embedding job first says on stderr how many images, about how long

    def __post_init__(self) -> None:
        self.precision = resolve_precision(self.precision, self.device)
        for lr in self.lrs or ():
            if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
                raise MsfkitError(f"--lr {lr}: a learning rate is a positive finite number")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise MsfkitError(f"temperature {self.temperature}: expected a positive finite number")
        if self.epochs < 1:
            raise MsfkitError(f"epochs {self.epochs}: expected at least 1")


@dataclass
class _Train:
    """The train rows an evaluation uses: which of the inputs (`picked`), their features and labels."""

    picked: np.ndarray
    x: np.ndarray
    y: np.ndarray


def evaluate(
    inputs: EvalInputs, options: EvalOptions | None = None, *, encoder=None, **overrides: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(report, predicted val labels per `prediction_name`). The report's "results" rows each
    name their protocol, k, temperature and split sizes; the k-NN predictions also hold every k of
    `curve_ks` that is not above the train size."""
    o = dataclasses.replace(options or EvalOptions(), **overrides)
    train_x, train_y = inputs.train_feats, inputs.train_labels
    picked = np.arange(len(train_y))
    if o.train_fraction is not None:
        picked = sample_per_class(train_y, o.train_fraction, o.seed)
        train_x, train_y = train_x[picked], train_y[picked]
    classes, _ = class_indices(train_y)
    class_indices(inputs.val_labels, classes)  # a val class unknown to train is an error
    n_train, n_val = len(train_y), len(inputs.val_labels)
    rows: list[dict[str, Any]] = []
    predictions: dict[str, np.ndarray] = {}
    for protocol in o.knn_protocols:
        use_ks = tuple(o.ks) if o.ks else DEFAULT_KS[protocol]
        curve_ks = {k for k in o.curve_ks if k <= n_train}
        ranked = knn_scores(
            train_x,
            train_y,
            inputs.val_feats,
            ks=sorted(set(use_ks) | curve_ks),  # one neighbour search: the curve holds the report's numbers
            protocol=protocol,
            temperature=o.temperature,
            memory_budget_bytes=o.memory_budget_bytes,
            device=o.device,
        )
        for k, r in sorted(ranked.items()):
            predictions[prediction_name(f"knn-{protocol}", k)] = r[:, 0]
            if k not in use_ks:
                continue
            rows.append(
                {
                    "protocol": f"knn-{protocol}",
                    "k": k,
                    "temperature": o.temperature if protocol == "dino" else None,
                    "top1": percent(r[:, 0] == inputs.val_labels),
                    "top5": percent((r[:, :5] == inputs.val_labels[:, None]).any(1))
                    if protocol == "dino"
                    else None,
                    "n_train": n_train,
                    "n_val": n_val,
                }
            )
    if o.linear_preset is not None:
        row, pred = _linear(inputs, _Train(picked, train_x, train_y), o, encoder)
        rows.append(row)
        predictions[row["protocol"]] = pred
    report = {
        "msfkit": __version__,
        "model": inputs.model,
        "source": inputs.source,
        "n_train": n_train,
        "n_val": n_val,
        "n_classes": len(classes),
        "train_fraction": o.train_fraction,
        "results": rows,
    }
    return report, predictions


def prediction_name(protocol: str, k: int | None) -> str:
    """The key of a result's predictions: 'knn-msf-k20', or the protocol alone ('linear-fast')."""
    return protocol if k is None else f"{protocol}-k{k}"


def _linear(inputs: EvalInputs, train: _Train, o: EvalOptions, encoder) -> tuple[dict[str, Any], np.ndarray]:
    preset, lrs, device, seed = o.linear_preset, o.lrs, o.device, o.seed
    train_x, train_y = train.x, train.y

    if preset not in PRESETS:
        raise MsfkitError(f"unknown linear preset {preset!r}; expected one of {', '.join(PRESETS)}")
    recipe = LinearRecipe(epochs=o.epochs)
    if preset == "fast":
        head = train_linear_fast(
            train_x, train_y, lrs=lrs or FAST_LRS, recipe=recipe, seed=seed, device=device
        )
        notes = f"lr {head.info['recipe']['lr']:g}" + (
            " (picked on 10% of train)" if head.info["lr_sweep"] else ""
        )
    else:
        if encoder is None or inputs.train_images is None:
            raise MsfkitError(
                "--preset msf runs the backbone on the train images: "
                "give a model and image folders or --dataset"
            )
        if lrs:
            if len(lrs) != 1:
                raise MsfkitError(f"--preset msf trains with one learning rate; got {len(lrs)}")
            recipe.lr = float(lrs[0])
        classes, targets = class_indices(train_y)
        mean, std = standardization(train_x)
        ds = Subset(inputs.train_images(train_transform(encoder.config)), train.picked, targets)
        head = train_linear_msf(
            encoder, ds, mean, std, classes.tolist(), recipe=recipe, seed=seed,
            device=device, precision=o.precision, workers=o.workers, progress=o.progress,
        )  # fmt: skip
        notes = f"lr {recipe.lr:g}, {recipe.epochs} epochs"
    head.info |= {"model": inputs.model, "source": inputs.source}
    top1, top5, pred = evaluate_head(head.to(device), inputs.val_feats, inputs.val_labels)
    if o.head_out is not None:
        head.save(o.head_out)
        notes += f"; head saved to {o.head_out}"
    row = {
        "protocol": f"linear-{preset}",
        "k": None,
        "temperature": None,
        "top1": round(top1, 2),
        "top5": round(top5, 2),
        "n_train": len(train_y),
        "n_val": len(inputs.val_labels),
        "lr": head.info["recipe"]["lr"],
        "epochs": recipe.epochs,
        "lr_sweep": head.info.get("lr_sweep"),
        "notes": notes,
    }
    return row, pred


def percent(hits: np.ndarray) -> float:
    """Percent of hits, to the 0.01 a report means (70.2, not 70.19999999999999)."""
    return round(float(np.mean(hits) * 100), 2)
