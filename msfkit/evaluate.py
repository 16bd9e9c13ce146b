"""`msfkit eval`: the k-NN and linear protocols of MSF on a model's features, each number named by protocol.

Inputs (`load_inputs`), one of:
- a named dataset (`dataset="fashion-mnist"`: its train and test splits) and a model;
- two image folders with class sub-folders (`train=DIR, val=DIR`) and a model: each is embedded
  into an embedding store by `msfkit.embed.embed` (kept in `features_dir` for the next run);
- two embedding stores with labels (`train=STORE, val=STORE`): no model needed, except for the
  `msf` linear preset, which reruns the backbone on the images.
Features are always the model's own centre-crop preprocessing, L2-normalised.

    inputs, encoder = load_inputs(model="my-model", dataset="fashion-mnist")
    report, predictions = evaluate(inputs, knn_protocols=("msf", "dino"), linear_preset="fast")
    print(format_table(report))
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msfkit import _version
from msfkit.models.errors import MsfkitError

KNN_CURVE_KS = (1, 2, 5, 10, 20, 50, 100, 200)


@dataclass
class EvalInputs:
    """Features and labels of both splits, what made them, and (for the msf preset) the train images."""

    train_feats: np.ndarray
    train_labels: np.ndarray
    val_feats: np.ndarray
    val_labels: np.ndarray
    model: dict[str, Any]  # {"name", "fingerprint"}
    source: dict[str, Any]  # {"kind": "dataset"|"folders"|"stores", "train": ..., "val": ...}
    # transform -> dataset of (image tensor, label) in train_feats order; None for store-only inputs
    train_images: Callable[[Any], Any] | None = None


def load_inputs(
    *,
    model: str | None = None,
    train: str | Path | None = None,
    val: str | Path | None = None,
    dataset: str | None = None,
    features_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    workers: int = 0,
    precision: str = "fp32",
    progress: bool = False,
):
    """(EvalInputs, encoder or None) from a dataset name, two image folders or two stores."""
    if dataset is not None:
        if train is not None or val is not None:
            raise MsfkitError("give either --dataset or --train/--val, not both")
        if model is None:
            raise MsfkitError("--dataset needs a model (-m/--model or MSFKIT_MODEL)")
        return _dataset_inputs(dataset, model, features_dir, device, batch_size, workers, precision, progress)
    if train is None or val is None:
        raise MsfkitError("give --train and --val (image folders or embedding stores), or --dataset")
    encoder = _load_model(model) if model is not None else None
    with tempfile.TemporaryDirectory(prefix="msfkit-eval-") as tmp:
        work = Path(features_dir) if features_dir is not None else Path(tmp)
        stores = {
            split: _as_store(
                Path(path), split, encoder, work, device, batch_size, workers, precision, progress
            )
            for split, path in (("train", train), ("val", val))
        }
        fps = {split: store.model.get("fingerprint") for split, store in stores.items()}
        if fps["train"] != fps["val"]:
            raise MsfkitError(
                f"train and val features come from different models ({fps['train']} vs {fps['val']}); "
                "embed both with the same model"
            )
        if encoder is not None and encoder.fingerprint != fps["train"]:
            raise MsfkitError(
                f"the stores were embedded with model {fps['train']}, "
                f"not with {model} ({encoder.fingerprint})"
            )
        given = {"train": train, "val": val}
        splits = {split: _store_split(store, split, given[split]) for split, store in stores.items()}
        train_store = stores["train"]
        train_paths = train_store.absolute_paths() if train_store.source_root is not None else None
        name = train_store.model.get("name") or model
    kinds = {"store" if _is_store(Path(p)) else "folder" for p in (train, val)}
    labels = splits["train"][1]
    inputs = EvalInputs(
        *splits["train"],
        *splits["val"],
        model={"name": name, "fingerprint": fps["train"]},
        source={"kind": "stores" if kinds == {"store"} else "folders", "train": str(train), "val": str(val)},
        train_images=(lambda tf: ImageFileDataset(train_paths, labels, tf)) if train_paths else None,
    )
    return inputs, encoder


class ImageFileDataset:
    """(transform(image), label) for image files, read with msfkit's safe loader."""

    def __init__(self, paths: Sequence[str | Path], labels: Sequence[Any], transform) -> None:
        self.paths, self.labels, self.transform = list(paths), list(labels), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from msfkit.images import load_image

        return self.transform(load_image(self.paths[i])), self.labels[i]


class _Relabelled:
    """A subset of a dataset whose labels are replaced by class indices (what the loss needs)."""

    def __init__(self, dataset, indices: np.ndarray, targets: np.ndarray) -> None:
        self.dataset, self.indices, self.targets = dataset, indices, targets

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int):
        return self.dataset[int(self.indices[j])][0], int(self.targets[j])


def evaluate(
    inputs: EvalInputs,
    *,
    knn_protocols: Sequence[str] = ("msf",),
    ks: Sequence[int] | None = None,
    temperature: float = 0.07,
    linear_preset: str | None = None,
    lrs: Sequence[float] | None = None,
    epochs: int = 40,
    train_fraction: float | None = None,
    encoder=None,
    head_out: str | Path | None = None,
    device: str = "cpu",
    memory_budget_bytes: int | None = None,
    batch_size: int = 256,
    workers: int = 0,
    precision: str = "fp32",
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(report, predicted val labels per result name). The report's "results" rows each name
    their protocol, k, temperature and split sizes."""
    from msfkit.knn import DEFAULT_KS, knn_scores
    from msfkit.linear import class_indices, sample_per_class

    train_x, train_y = inputs.train_feats, inputs.train_labels
    picked = np.arange(len(train_y))
    if train_fraction is not None:
        picked = sample_per_class(train_y, train_fraction, seed)
        train_x, train_y = train_x[picked], train_y[picked]
    classes, _ = class_indices(train_y)
    class_indices(inputs.val_labels, classes)  # a val class unknown to train is an error
    n_train, n_val = len(train_y), len(inputs.val_labels)
    rows: list[dict[str, Any]] = []
    predictions: dict[str, np.ndarray] = {}
    for protocol in knn_protocols:
        use_ks = tuple(ks) if ks else DEFAULT_KS[protocol]
        ranked = knn_scores(
            train_x,
            train_y,
            inputs.val_feats,
            ks=use_ks,
            protocol=protocol,
            temperature=temperature,
            memory_budget_bytes=memory_budget_bytes,
            device=device,
        )
        for k, r in sorted(ranked.items()):
            rows.append(
                {
                    "protocol": f"knn-{protocol}",
                    "k": k,
                    "temperature": temperature if protocol == "dino" else None,
                    "top1": _pct(r[:, 0] == inputs.val_labels),
                    "top5": _pct((r[:, :5] == inputs.val_labels[:, None]).any(1))
                    if protocol == "dino"
                    else None,
                    "n_train": n_train,
                    "n_val": n_val,
                }
            )
            predictions[f"knn-{protocol}-k{k}"] = r[:, 0]
    if linear_preset is not None:
        row, pred = _linear(
            inputs, picked, train_x, train_y, linear_preset, lrs, epochs, encoder, head_out, device,
            batch_size, workers, precision, seed, progress,
        )  # fmt: skip
        rows.append(row)
        predictions[row["protocol"]] = pred
    report = {
        "msfkit": _version.__version__,
        "model": inputs.model,
        "source": inputs.source,
        "n_train": n_train,
        "n_val": n_val,
        "n_classes": len(classes),
        "train_fraction": train_fraction,
        "results": rows,
    }
    return report, predictions


def knn_curve(
    inputs: EvalInputs,
    protocol: str,
    *,
    ks: Sequence[int] = KNN_CURVE_KS,
    temperature: float = 0.07,
    train_fraction: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    memory_budget_bytes: int | None = None,
) -> dict[int, float]:
    """Top-1 % for each k (those not above the train size) from one neighbour search: the plot's data."""
    from msfkit.knn import knn_classify
    from msfkit.linear import sample_per_class

    train_x, train_y = inputs.train_feats, inputs.train_labels
    if train_fraction is not None:
        picked = sample_per_class(train_y, train_fraction, seed)
        train_x, train_y = train_x[picked], train_y[picked]
    use = [k for k in ks if k <= len(train_y)]
    preds = knn_classify(
        train_x,
        train_y,
        inputs.val_feats,
        ks=use,
        protocol=protocol,
        temperature=temperature,
        memory_budget_bytes=memory_budget_bytes,
        device=device,
    )
    return {k: _pct(p == inputs.val_labels) for k, p in sorted(preds.items())}


def format_table(report: dict[str, Any]) -> str:
    """The results as an aligned text table: protocol, k, T, split sizes, top-1, top-5."""
    header = ("protocol", "k", "T", "train", "val", "top-1", "top-5", "notes")
    lines = [header]
    for r in report["results"]:
        lines.append(
            (
                r["protocol"],
                _fmt(r.get("k")),
                _fmt(r.get("temperature")),
                str(r["n_train"]),
                str(r["n_val"]),
                f"{r['top1']:.2f}",
                _fmt(r.get("top5"), ".2f"),
                r.get("notes", ""),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    src = report["source"]
    model = report["model"]
    out.append("")
    out.append(
        f"model {model.get('name')} ({model.get('fingerprint')}); train {src['train']}, val {src['val']}"
        + (f"; {report['train_fraction']:g} of train labels" if report.get("train_fraction") else "")
    )
    return "\n".join(out)


def results_markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table for a model card."""
    lines = [
        "| protocol | k | T | train | val | top-1 | top-5 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['protocol']} | {_fmt(r.get('k'))} | {_fmt(r.get('temperature'))} | {r['n_train']} | "
            f"{r['n_val']} | {r['top1']:.2f} | {_fmt(r.get('top5'), '.2f')} |"
        )
    src = report["source"]
    lines += [
        "",
        f"Train: `{src['train']}`; val: `{src['val']}`"
        + (f"; {report['train_fraction']:g} of the train labels" if report.get("train_fraction") else "")
        + f". Measured with msfkit {report['msfkit']} (`msfkit eval`); model fingerprint "
        f"`{report['model'].get('fingerprint')}`.",
        "",
        "Protocols (MSF paper): knn-msf = cosine, unweighted majority vote (ties: the class of the "
        "nearest voter); knn-dino = votes weighted by exp(sim/T); linear = frozen backbone, "
        "L2-normalise, standardise, Linear (msf preset: the paper's 40-epoch augmented recipe; "
        "fast: same head on cached centre-crop features, lr chosen on a split of train).",
    ]
    return "\n".join(lines)


def write_card(model_dir: str | Path, report: dict[str, Any]) -> Path:
    """Put the results into MODEL_DIR/README.md; the folder must hold the evaluated model."""
    from msfkit.models.card import render_card, replace_results
    from msfkit.models.encoder import CARD_NAME, Encoder

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MsfkitError(f"--card {model_dir}: not a model folder")
    encoder = Encoder.from_pretrained(model_dir)
    if encoder.fingerprint != report["model"].get("fingerprint"):
        raise MsfkitError(
            f"--card {model_dir}: that folder holds model {encoder.fingerprint}, but the results are of "
            f"{report['model'].get('fingerprint')}"
        )
    card_path = model_dir / CARD_NAME
    card = card_path.read_text() if card_path.is_file() else render_card(encoder.config)
    card_path.write_text(replace_results(card, results_markdown(report)))
    return card_path


# -- inputs --------------------------------------------------------------------------------------


def _dataset_inputs(name, model, features_dir, device, batch_size, workers, precision, progress):
    from msfkit.datasets import ArrayImageDataset, load_dataset
    from msfkit.features import extract_features

    encoder = _load_model(model)
    splits = {}
    arrays = {}
    for split in ("train", "test"):
        images, labels, _ = load_dataset(name, split)
        arrays[split] = (images, labels)
        cache = Path(features_dir) / f"{name}-{split}-{encoder.fingerprint}.npz" if features_dir else None
        if cache is not None and cache.is_file():
            with np.load(cache, allow_pickle=False) as f:
                splits[split] = (f["features"], f["labels"])
            continue
        ds = ArrayImageDataset(images, labels, encoder.transform())
        feats, labs = extract_features(
            encoder,
            ds,
            batch_size=batch_size,
            device=device,
            precision=precision,
            workers=workers,
            progress=progress,
        )
        splits[split] = (feats, labs)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.stem + ".tmp.npz")
            np.savez(tmp, features=feats, labels=labs)
            tmp.replace(cache)
    train_images, train_labels = arrays["train"]
    inputs = EvalInputs(
        *splits["train"],
        *splits["test"],
        model={"name": encoder.name or model, "fingerprint": encoder.fingerprint},
        source={"kind": "dataset", "train": f"{name}:train", "val": f"{name}:test"},
        train_images=lambda tf: ArrayImageDataset(train_images, train_labels, tf),
    )
    return inputs, encoder


def _as_store(path: Path, split, encoder, work: Path, device, batch_size, workers, precision, progress):
    """The store at `path`, or the store of the image folder `path` (embedded on first use)."""
    from msfkit.store import open_store

    if not path.exists():
        raise MsfkitError(f"--{split} {path}: no such folder")
    if _is_store(path):
        return open_store(path)
    if not path.is_dir():
        raise MsfkitError(f"--{split} {path}: expected a folder of class sub-folders or an embedding store")
    if encoder is None:
        raise MsfkitError(
            f"--{split} {path} is an image folder: give the model to embed it with (-m/--model)"
        )
    from msfkit.embed import embed

    out = work / f"{split}-{encoder.fingerprint}"
    embed([path], encoder, out, batch_size=batch_size, workers=workers, precision=precision,
          device=device, progress=progress, draft=False)  # fmt: skip
    return open_store(out)


def _store_split(store, split: str, where) -> tuple[np.ndarray, np.ndarray]:
    meta = store.meta
    if len(meta) == 0:
        raise MsfkitError(f"--{split} {where}: the {split} split is empty")
    labels = meta["label"]
    if labels.isna().any():
        raise MsfkitError(
            f"--{split} {where}: {int(labels.isna().sum())} of {len(meta)} items have no label "
            "(the images must sit in class sub-folders)"
        )
    # A copy, not the memory map: a temporary store is deleted once read.
    return np.array(store.vectors, dtype=np.float32), labels.to_numpy(dtype=str)


def _is_store(path: Path) -> bool:
    from msfkit.store import MANIFEST

    return (path / MANIFEST).is_file() or (
        path.is_dir() and any((d / MANIFEST).is_file() for d in path.iterdir() if d.name.startswith("part-"))
    )


def _load_model(model: str):
    import msfkit

    return msfkit.load(model)


# -- linear --------------------------------------------------------------------------------------


def _linear(inputs, picked, train_x, train_y, preset, lrs, epochs, encoder, head_out, device,
            batch_size, workers, precision, seed, progress):  # fmt: skip
    from msfkit.linear import (
        FAST_LRS,
        PRESETS,
        LinearRecipe,
        class_indices,
        evaluate_head,
        standardization,
        train_linear_fast,
        train_linear_msf,
        train_transform,
    )

    if preset not in PRESETS:
        raise MsfkitError(f"unknown linear preset {preset!r}; expected one of {', '.join(PRESETS)}")
    recipe = LinearRecipe(epochs=epochs)
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
        ds = _Relabelled(inputs.train_images(train_transform(encoder.config)), picked, targets)
        head = train_linear_msf(
            encoder, ds, mean, std, classes.tolist(), recipe=recipe, seed=seed,
            device=device, precision=precision, workers=workers, progress=progress,
        )  # fmt: skip
        notes = f"lr {recipe.lr:g}, {recipe.epochs} epochs"
    head.info |= {"model": inputs.model, "source": inputs.source}
    top1, top5, pred = evaluate_head(head.to(device), inputs.val_feats, inputs.val_labels)
    if head_out is not None:
        head.save(head_out)
        notes += f"; head saved to {head_out}"
    row = {
        "protocol": f"linear-{preset}",
        "k": None,
        "temperature": None,
        "top1": top1,
        "top5": top5,
        "n_train": len(train_y),
        "n_val": len(inputs.val_labels),
        "lr": head.info["recipe"]["lr"],
        "epochs": recipe.epochs,
        "lr_sweep": head.info.get("lr_sweep"),
        "notes": notes,
    }
    return row, pred


def _pct(hits: np.ndarray) -> float:
    return float(np.mean(hits) * 100)


def _fmt(value, spec: str = "g") -> str:
    return "-" if value is None else format(value, spec)
