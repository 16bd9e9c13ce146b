"""`msfkit.evaluate`: inputs -> protocols -> report (+ plots, model card): what `msfkit eval` runs.
For example:

    report = msfkit.evaluate("my-model", dataset="fashion-mnist", knn=("msf", "dino"), linear="fast")
    report = msfkit.evaluate(train="train-store", val="val-store", ks=(1, 10, 20))
    print(format_table(report))                             # msfkit.eval.report
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from msfkit.eval.inputs import load_inputs
from msfkit.eval.linear import HEAD_CONFIG, HEAD_WEIGHTS
from msfkit.eval.report import write_card, write_plots
from msfkit.eval.run import KNN_CURVE_KS, EvalOptions
from msfkit.eval.run import evaluate as run_protocols
from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import resolve_device
from msfkit.outputs import Kind, check_output, is_model_folder


def evaluate(
    model=None,
    *,
    dataset: str | None = None,
    train: str | Path | None = None,
    val: str | Path | None = None,
    knn: bool | Sequence[str] = True,
    linear: str | None = None,
    features_dir: str | Path | None = None,
    plot_dir: str | Path | None = None,
    card: str | Path | None = None,
    device: str = "auto",
    force: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """The report of the k-NN protocols `knn` (True: "msf"; or names) and the linear preset `linear`
    ("fast" | "msf") on `model`'s features of `dataset`, or of `train`/`val` folders or stores.

    `options`: the fields of `msfkit.eval.run.EvalOptions` (ks, temperature, lrs, epochs,
    train_fraction, head_out, memory_budget_bytes, batch_size, workers, precision, seed, progress,
    announce).
    `plot_dir` writes accuracy-over-k and confusion-matrix PNGs; `card` writes the results into
    that model folder's README. Every output is checked by the output guard before any work
    (`msfkit.outputs`): `force` replaces an existing plots folder or linear-head folder, nothing else.
    """
    protocols = ("msf",) if knn is True else tuple(knn or ())
    if not protocols and linear is None:
        protocols = ("msf",)
    dev = str(resolve_device(device))
    curve = KNN_CURVE_KS if plot_dir is not None else ()
    opts = EvalOptions(knn_protocols=protocols, linear_preset=linear, device=dev, curve_ks=curve, **options)
    _check_outputs(plot_dir, opts.head_out, card, force)
    inputs, encoder = load_inputs(
        model=model, train=train, val=val, dataset=dataset, features_dir=features_dir, device=dev,
        batch_size=opts.batch_size, workers=opts.workers, precision=opts.precision, progress=opts.progress,
        announce=opts.announce,
    )  # fmt: skip
    report, predictions = run_protocols(inputs, opts, encoder=encoder)
    if plot_dir is not None:
        report["plots"] = write_plots(Path(plot_dir), inputs, report, predictions)
    if card is not None:
        report["card"] = str(write_card(card, report))
    return report


def _is_plots_folder(folder: Path) -> bool:
    return all(p.is_file() and p.suffix == ".png" for p in folder.iterdir())


def _is_head_folder(folder: Path) -> bool:
    return {p.name for p in folder.iterdir()} <= {HEAD_CONFIG, HEAD_WEIGHTS}


PLOTS = Kind("a folder of plots (PNG files only)", _is_plots_folder)
HEAD = Kind("a linear-head folder", _is_head_folder)


def _check_outputs(plot_dir, head_out, card, force: bool) -> None:
    """The output guard on every output, before the (slow) features: the plots and head folders;
    the card goes into a model folder, and only into one (`write_card` then checks it is the model)."""
    if plot_dir is not None:
        check_output(plot_dir, force=force, kind=PLOTS)
    if head_out is not None:
        check_output(head_out, force=force, kind=HEAD)
    if card is not None and not is_model_folder(Path(card)):
        raise MsfkitError(f"--card {card}: not an msfkit model folder")
