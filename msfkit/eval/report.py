"""How `msfkit eval` reports: an aligned table, a model-card Markdown table, the card itself, plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from msfkit.eval.plots import plot_confusion, plot_knn_curve
from msfkit.eval.run import percent, prediction_name
from msfkit.models.card import render_card, replace_results
from msfkit.models.encoder import CARD_NAME, Encoder
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write
from msfkit.models.identity import check_same_model


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
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MsfkitError(f"--card {model_dir}: not a model folder")
    encoder = Encoder.from_pretrained(model_dir)
    check_same_model(
        encoder, report["model"], f"--card {model_dir}", "the results", "card the model evaluated"
    )
    card_path = model_dir / CARD_NAME
    card = card_path.read_text() if card_path.is_file() else render_card(encoder.config)
    text = replace_results(card, results_markdown(report))
    return atomic_write(card_path, lambda tmp: tmp.write_text(text))


def _fmt(value, spec: str = "g") -> str:
    return "-" if value is None else format(value, spec)


def write_plots(plot_dir: Path, inputs, report: dict[str, Any], predictions: dict) -> list[str]:
    """Accuracy-over-k of each k-NN protocol and a confusion matrix per result, as PNGs in `plot_dir`.

    Drawn from the `predictions` of the evaluation itself (`EvalOptions.curve_ks`): the curve passes
    through the report's numbers, on the same train rows, seed and memory budget."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    title = f"{report['model'].get('name')} on {report['source']['val']}"
    written = []
    curves: dict[str, dict[int, float]] = {}
    for name, pred in predictions.items():
        protocol, sep, k = name.rpartition("-k")
        if sep and protocol.startswith("knn-") and k.isdigit():
            curves.setdefault(protocol, {})[int(k)] = percent(pred == inputs.val_labels)
    if curves:
        written.append(plot_knn_curve(curves, plot_dir / "knn_accuracy_over_k.png", title))
    classes = np.unique(inputs.train_labels)
    for row in report["results"]:
        name = prediction_name(row["protocol"], row["k"])
        path = plot_dir / f"confusion_{name}.png"
        written.append(
            plot_confusion(inputs.val_labels, predictions[name], classes, path, f"{name} — {title}")
        )
    return [str(p) for p in written]
