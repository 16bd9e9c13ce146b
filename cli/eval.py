"""`msfkit eval`: k-NN and linear evaluation of a model or of labelled embedding stores."""

from __future__ import annotations

import sys

import click

from msfkit.cli.common import (
    device_option,
    echo_json,
    force_option,
    json_option,
    model_option,
    precision_option,
    storage_option,
    warn_slow_bf16,
)
from msfkit.models.errors import MsfkitError


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@storage_option
@model_option
@click.option(
    "--train", type=click.Path(), help="Train split: image folder of classes (or a URL prefix), or a store."
)
@click.option("--val", type=click.Path(), help="Val split: image folder of classes, or a store.")
@click.option(
    "--dataset", type=click.Choice(["fashion-mnist"]), help="A named dataset (train vs test split)."
)
@click.option("--knn", is_flag=True, help="k-NN evaluation (the default when neither --knn nor --linear).")
@click.option("--linear", is_flag=True, help="Linear evaluation (frozen backbone).")
@click.option(
    "--protocol",
    "protocols",
    type=click.Choice(["msf", "dino"]),
    multiple=True,
    default=("msf",),
    show_default=True,
    help="k-NN protocol; repeat for both. msf: majority vote, k=1,20; dino: exp(sim/T) votes, k=20.",
)
@click.option(
    "-k", "ks", multiple=True, help="Neighbours; repeat or give a list: -k 1,20 (default 1,20 msf; 20 dino)."
)
@click.option("--temperature", type=float, default=0.07, show_default=True, help="T of the dino vote.")
@click.option(
    "--preset",
    type=click.Choice(["fast", "msf"]),
    default="fast",
    show_default=True,
    help="Linear recipe: msf = the paper's (backbone on augmented views every step), fast = cached features.",
)
@click.option("--lr", "lrs", help="Comma-separated learning rates (fast: sweep picked on train; msf: one).")
@click.option("--epochs", type=click.IntRange(1), default=40, show_default=True, help="Linear epochs.")
@click.option(
    "--train-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    help="Use this fraction of the train labels per class (e.g. 0.01, 0.1), chosen deterministically.",
)
@click.option(
    "--head-out",
    type=click.Path(),
    help="Save the trained linear head in this folder (nothing is written unless asked).",
)
@click.option(
    "--features-dir",
    type=click.Path(),
    help="Keep the features (stores, .npz) here and reuse them next time [default: the msfkit cache, "
    "$MSFKIT_CACHE or ~/.cache/msfkit, eval-features/]. Keyed by model and source.",
)
@click.option(
    "--memory", "memory_budget", default="512MB", show_default=True, help="RAM for one k-NN similarity block."
)
@click.option(
    "--batch-size", type=click.IntRange(1), default=256, show_default=True, help="Images per batch."
)
@click.option(
    "--workers", type=click.IntRange(0), default=0, show_default=True, help="Data-loading processes."
)
@precision_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the linear training.")
@click.option("--plot", "plot_dir", type=click.Path(), help="Write PNG plots into this folder.")
@click.option(
    "--card",
    "card_dir",
    type=click.Path(),
    help="Write the results into this model folder's card.",
)
@force_option
@device_option
@json_option
def eval_cmd(
    model, train, val, dataset, knn, linear, protocols, ks, temperature, preset, lrs, epochs, train_fraction,
    head_out, features_dir, memory_budget, batch_size, workers, precision, seed, plot_dir, card_dir, force,
    device, as_json,
) -> None:  # fmt: skip
    """Evaluate a model with the MSF paper's k-NN and linear protocols.

    \b
    Inputs, one of:
      -m MODEL --dataset fashion-mnist
      -m MODEL --train DIR --val DIR      (class sub-folders; embedded into stores)
      --train STORE --val STORE           (embedding stores with labels)

    k-NN "msf" breaks a tied vote in favour of the tied class whose nearest voter is the
    closest; classes are the train labels (folder names for folders and stores).

    \b
    Examples:
      msfkit eval -m my-model --dataset fashion-mnist --knn --protocol msf --protocol dino
      msfkit eval -m my-model --train data/train --val data/val --linear --preset fast
    """
    import msfkit
    from msfkit.eval.report import format_table
    from msfkit.sizes import cache_dir, parse_size

    # Parse everything before the (slow) feature extraction, so a typo fails at once.
    options = {
        "ks": [k for text in ks for k in _numbers(text, int, "-k")] or None,
        "lrs": _numbers(lrs, float, "--lr") if lrs else None,
        "memory_budget_bytes": parse_size(memory_budget, "--memory"),
    }
    warn_slow_bf16(precision, device)
    report = msfkit.evaluate(
        model, dataset=dataset, train=train, val=val, knn=protocols if knn or not linear else False,
        linear=preset if linear else None, features_dir=features_dir or cache_dir("eval-features"),
        plot_dir=plot_dir, card=card_dir, force=force,
        device=device, temperature=temperature, epochs=epochs, train_fraction=train_fraction,
        head_out=head_out, batch_size=batch_size, workers=workers, precision=precision, seed=seed,
        progress=sys.stderr.isatty(), announce=True, **options,
    )  # fmt: skip
    if as_json:
        echo_json(report)
        return
    click.echo(format_table(report))
    for key in ("plots", "card"):
        if key in report:
            click.echo(f"{key}: {', '.join(report[key]) if key == 'plots' else report[key]}")


def _numbers(text: str, kind, flag: str) -> list:
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MsfkitError(f"{flag} {text!r}: expected comma-separated numbers") from None
