"""The training configuration: one dataclass whose defaults are the paper's ResNet50 recipe.

A run's config is built in three layers, later ones winning: the defaults (docs/method.md, "Hyper-parameters
of the paper's ResNet50 runs"), a preset for small data and/or a YAML file, and `key=value`
overrides from the command line. Every value is type-checked against the field it sets.

    cfg = load_config(preset="fashion-mnist", overrides=["epochs=5", "k=1"])
    cfg = load_config(yaml_path="my_run.yaml")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import DEVICES
from msfkit.models.runtime import PRECISIONS as FORWARD_PRECISIONS
from msfkit.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from msfkit.training.config_checks import check_ranges, safe_yaml

AUGMENTATIONS = ("weak/strong", "strong/strong", "weak/weak")  # target view / query view
AUGMENT_ON = ("device", "workers")  # where the views are made: training.views or training.augment
EMA_SCHEDULES = ("constant", "cosine")
LR_SCHEDULES = ("epoch", "step")
PRECISIONS = ("auto", *FORWARD_PRECISIONS)


@dataclass
class TrainConfig:
    """Everything a run needs; saved in every checkpoint so a run can be resumed or exported."""

    # data
    data: str = ""  # image folder (searched recursively) or a named dataset: "fashion-mnist"
    val_data: str = ""  # labelled set for the k-NN monitor: "fashion-mnist:test" or a class-folder tree
    limit: int = 0  # train on the first N images only (0 = all)
    max_bad_share: float = 0.01  # unreadable images are skipped (RUN/bad_files.csv); stop above this share
    out: str = "runs/msf"  # run folder: checkpoints, metrics.csv, TensorBoard logs, model/
    # network
    arch: str = "resnet50"  # resnet18 | resnet34 | resnet50 | resnet101
    stem: str = "imagenet"  # "cifar" (or cifar-s2, cifar-maxpool) for 32-64 px images
    init: str = ""  # start from this model folder or Hub id org/name[@rev]; arch and stem are its own
    image_size: int = 224  # RandomResizedCrop size of both views
    # method (docs/method.md)
    augmentation: str = "weak/strong"  # target view / query view; "MSF w/s" is the paper's best
    crop_scale: float = 0.2  # smallest area share of RandomResizedCrop (MoCo v2 and MSF: 0.2)
    blur: float = 0.5  # probability of the strong view's Gaussian blur (MoCo v2: 0.5; 0 = off)
    augment_on: str = "device"  # device: whole batches on the training device; workers: PIL per image
    k: int = 5  # neighbours in the mean shift; k = 1 is asymmetric BYOL
    bank_size: int = 1_024_000  # memory bank rows; any size, the ring buffer wraps
    ema: float = 0.99  # target momentum m in theta_t <- m theta_t + (1 - m) theta_q
    ema_schedule: str = "constant"  # "constant" (reference code) or "cosine" m -> 1 (BYOL)
    # optimisation
    epochs: int = 200  # passes over the data; the lr and EMA schedules span them all
    batch_size: int = 256  # global batch, split evenly over processes
    lr: float = 0.05  # SGD learning rate at the top of the cosine
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4  # on all parameters, as the reference
    lr_schedule: str = "epoch"  # cosine set once per epoch (reference) or every "step"
    warmup_epochs: int = 0  # linear warm-up before the cosine (the paper has none)
    max_steps: int = 0  # stop after this many optimiser steps in all (0 = run every epoch)
    max_minutes: float = 0.0  # stop after this much wall time (0 = no limit); checkpoint and export as usual
    # speed
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto = bf16 autocast on CUDA and on CPUs with native bf16, else fp32
    channels_last: bool = True  # channels-last memory layout (faster convolutions)
    compile: bool = False  # torch.compile the networks
    sync_bn: bool = False  # SyncBatchNorm across processes (CUDA only); default BN per process
    workers: int = 8  # data-loading processes per training process
    threads: int = 0  # CPU threads of a training process; 0 = the cores its data workers leave free
    # bookkeeping
    seed: int = 0  # seeds the initial weights, the data order and every augmentation
    save_every: int = 10  # checkpoint every N epochs (and always at the end)
    save_every_steps: int = 0  # also checkpoint every N steps (0 = off)
    knn_every: int = 10  # k-NN monitor every N epochs (0 = off; needs val_data and train labels)
    knn_every_steps: int = 0  # also the k-NN monitor every N steps (0 = off): a curve within short runs
    knn_at_start: bool = False  # also the k-NN monitor at step 0: the random-init baseline, same images
    knn_k: int = 20  # neighbours of the monitor (msf protocol: unweighted vote)
    knn_train_limit: int = 10_000  # train images the monitor embeds (0 = all)
    knn_val_limit: int = 2_000  # val images the monitor embeds (0 = all)
    log_every: int = 10  # steps between rows of metrics.csv

    def __post_init__(self) -> None:
        _check_choice("augmentation", self.augmentation, AUGMENTATIONS)
        _check_choice("augment_on", self.augment_on, AUGMENT_ON)
        _check_choice("ema_schedule", self.ema_schedule, EMA_SCHEDULES)
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("device", self.device, DEVICES)
        check_ranges(self)
        if self.k > self.bank_size:
            raise MsfkitError(f"config: k={self.k} is larger than bank_size={self.bank_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def method(self) -> str:
        """'msf', or 'byol-asym' when k = 1 (then the loss is exactly asymmetric BYOL's)."""
        return "byol-asym" if self.k == 1 else "msf"


# The small-image recipe on a CPU (BENCHMARKS.md, "Training": the stem comparison and the
# reproduction). Each choice measured or cited; everything else is the paper's.
SMALL_IMAGES: dict[str, Any] = dict(
    data="fashion-mnist",
    val_data="fashion-mnist:test",
    arch="resnet18",
    stem="cifar-s2",  # fastest 16 x 16-layer1 stem, smallest early dip at 32 px (bench/stems.py)
    image_size=32,  # Fashion-MNIST's 28 px upsampled: the CIFAR recipes' size
    blur=0.0,  # off at 32 px in lightly's and solo-learn's CIFAR recipes
    crop_scale=0.2,  # MSF / MoCo v2's 0.2 (the CIFAR recipes' 0.08 keeps 8 x 8 px of a 28 px garment)
    batch_size=128,  # lightly's CIFAR-10 table (BYOL 86.9 % k-NN after 200 epochs) trains at 128
    lr=0.06,  # lightly's CIFAR-10 benchmark: SGD 0.06 x batch / 128, momentum 0.9
    weight_decay=5e-4,  # lightly's CIFAR-10 benchmark, the usual CIFAR ResNet value
    lr_schedule="step",  # cosine per step: over a short run's few epochs, per epoch is a staircase
    ema=0.99,
    ema_schedule="cosine",  # BYOL's m = 0.99 -> 1 over the run, as lightly's and solo-learn's CIFAR recipes
    # 0.27 of the 60k images (the paper: 1,024,000 of 1.28M = 0.8): the rows are at most 128 steps
    # old, fresh enough for a run of a few epochs; costs nothing measurable (bench/train_step.py)
    bank_size=16_384,
    precision="auto",  # bf16 autocast where it is native (GPU, AVX512-BF16/AMX CPU), else fp32
    workers=0,  # arrays in memory, views on the device: every core trains (2 threads 65 images/s, 1: 47)
    knn_at_start=True,  # the random-init baseline on the monitor's images, in the log
)

PRESETS: dict[str, dict[str, Any]] = {
    # ResNet18 at 32 px on Fashion-MNIST with the cifar stem (16x the compute of the ImageNet stem
    # at 32 px: a GPU preset); the small-image recipe at batch 256
    "fashion-mnist": dict(
        SMALL_IMAGES,
        out="runs/fashion-mnist",
        stem="cifar",
        batch_size=256,
        lr=0.12,  # 0.06 x 256 / 128 (lightly's scaling)
        epochs=20,
        workers=2,
        save_every=1,
        knn_every=5,
        log_every=10,
    ),
    # the same on a 2-core CPU with the cifar-s2 stem: 4 epochs, about 17 minutes at 243 images/s on
    # 2 AVX-512 BF16 cores; a short schedule: in the 36-epoch reproduction (BENCHMARKS.md) the monitor
    # dipped below random init in the first epochs and passed it in epoch 9
    "fashion-mnist-small": dict(
        SMALL_IMAGES,
        out="runs/fashion-mnist-small",
        epochs=4,
        save_every=1,
        knn_every=1,
        knn_train_limit=10_000,
        knn_val_limit=2_000,
        log_every=10,
    ),
    # the README demo: the small-image recipe for about 3 minutes on 2 CPU cores; the monitor scores
    "demo": dict(
        SMALL_IMAGES,
        out="runs/demo",
        limit=45_000,  # one epoch: 2 min 20 s at 328 images/s on 2 AVX512-BF16 cores; boxed if slower
        crop_scale=0.5,  # 3 minutes: -2.8 vs random init against 0.2's -4.2 (bench/demo_recipes.py)
        epochs=1,
        max_minutes=3.0,  # stops at 3 minutes whatever the speed
        save_every=1,
        knn_every=1,
        knn_train_limit=5_000,
        knn_val_limit=1_000,
        log_every=8,  # random init first, then the trained network, on the same images
    ),
}


def load_config(
    preset: str | None = None,
    yaml_path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults <- `base` (a saved config) <- preset <- YAML file <- `key=value` overrides."""
    values: dict[str, Any] = dict(base or {})
    if preset is not None:
        if preset not in PRESETS:
            raise MsfkitError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    if yaml_path is not None:
        values.update(_read_yaml(Path(yaml_path)))
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise MsfkitError(f"override {item!r} is not key=value")
        # a string field takes the text as written ("out=2024" is a folder name, not a number)
        values[key] = text if types.get(key) == "str" else _parse_value(text)
    return make_config(values)


def make_config(values: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from a plain dict, refusing unknown keys and values of the wrong type."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise MsfkitError(f"config: unknown keys {', '.join(unknown)}; known: {', '.join(fields)}")
    return TrainConfig(**{k: _typed(k, v, fields[k].type) for k, v in values.items()})


def saved_config(values: dict[str, Any], source: str | Path) -> TrainConfig:
    """The TrainConfig a checkpoint holds; a bad one is an error naming the file and the field."""
    try:
        return make_config(values)
    except MsfkitError as e:
        raise MsfkitError(f"{source}: training checkpoint field 'config': {e}") from None


def _typed(key: str, value: Any, type_name: str) -> Any:
    expected = {"str": str, "int": int, "float": float, "bool": bool}[type_name]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and value is None:
        return ""
    if type(value) is not expected:
        raise MsfkitError(f"config: {key} must be {type_name}, not {type(value).__name__} ({value!r})")
    return value


def _parse_value(text: str) -> Any:
    try:
        value = safe_yaml(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string; Python does not
        for number in (int, float):
            try:
                return number(value)
            except ValueError:
                pass
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MsfkitError(f"{path}: no such config file")
    try:
        data = safe_yaml(path.read_text())
    except yaml.YAMLError as e:
        raise MsfkitError(f"{path}: not valid YAML ({' '.join(str(e).split())[:120]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MsfkitError(f"{path}: expected a mapping of config keys, got a {type(data).__name__}")
    return data


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise MsfkitError(f"config: {name} must be one of {', '.join(choices)}, not {value!r}")


FIXED_ON_RESUME = ("arch", "stem", "bank_size")  # what the checkpoint's tensors are shaped by


def resolve_config(
    preset: str | None = None,
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
) -> TrainConfig:
    """The config a `train` call runs with. With `resume`, the run's own saved config (from
    OUT/checkpoint.pt) with `overrides` on top; a run folder without a checkpoint is an error."""
    cfg = load_config(preset, config_path, overrides)
    if not resume:
        return cfg
    ckpt = Path(cfg.out) / CHECKPOINT_NAME
    if not ckpt.is_file():
        raise MsfkitError(f"--resume: no {CHECKPOINT_NAME} in {cfg.out}")
    saved = load_checkpoint(ckpt)["config"]
    saved_config(saved, ckpt)
    resumed = load_config(overrides=overrides, base=saved)
    for key in FIXED_ON_RESUME:  # the saved tensors have these shapes: a change cannot load them
        if key in saved and getattr(resumed, key) != saved[key]:
            raise MsfkitError(
                f"--resume: {key} cannot change ({saved[key]} in {ckpt}, {getattr(resumed, key)} asked); "
                "start a new run (another out=) instead"
            )
    return resumed
