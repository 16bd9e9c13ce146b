"""`msfkit train [KEY=VALUE]...`: MSF pre-training from a preset, a YAML file and overrides."""

from __future__ import annotations

from pathlib import Path

import click

from msfkit.cli.common import echo_json, json_option
from msfkit.models.errors import MsfkitError


def _help_keys(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from msfkit.training.keys import render_keys

    click.echo(render_keys(), nl=False)
    ctx.exit()


@click.command("train", no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--preset", help="Start from a preset: fashion-mnist (ResNet18, 32 px), demo (about 3 min on CPU)."
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML file of config keys.",
)
@click.option("--resume", is_flag=True, help="Continue the run in out= from its checkpoint.pt.")
@click.option("--show-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@click.option(
    "--help-keys",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_help_keys,
    help="List every config key with its type, default and meaning, and exit.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@json_option
def train(
    overrides: tuple[str, ...],
    preset: str | None,
    config_path: str | None,
    resume: bool,
    show_config: bool,
    quiet: bool,
    as_json: bool,
):
    """Train an encoder with MSF; write a run folder (checkpoints, metrics.csv, tb/) and RUN/model.

    Defaults are the paper's ResNet50 recipe (SGD lr 0.05, batch 256, 200 epochs, k=5, bank
    1,024,000, EMA 0.99, weak/strong views). Any key can be set: `epochs=50 k=1 data=/photos`.
    With --resume the run's saved config is used and KEY=VALUE overrides apply on top.
    `--show-config` prints every key with the value it would get; `--help-keys` what each key means.

    \b
    msfkit train --preset demo                       # Fashion-MNIST, ~3 minutes on a laptop CPU
    msfkit train data=/imagenet/train val_data=/imagenet/val out=runs/r50
    msfkit train init=org/name data=/my/photos out=runs/mine   # fine-tune a model folder or Hub model
    torchrun --nproc_per_node 8 -m msfkit.cli train -c r50.yaml
    """
    import yaml

    from msfkit.training.config import resolve_config

    cfg = resolve_config(preset, config_path, overrides, resume)
    if show_config:
        click.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False), nl=False)
        return
    from msfkit.outputs import check_not_inside, is_run_folder
    from msfkit.training.loop import train as run_training

    out = Path(cfg.out)
    if out.is_dir() and any(out.iterdir()) and not is_run_folder(out):
        raise MsfkitError(f"{out}: holds files that are not a training run; choose another out=")
    check_not_inside(out)
    model_dir = run_training(cfg, resume=resume, progress=not quiet)
    if model_dir is None:  # a torchrun process other than rank 0
        return
    if as_json:
        echo_json({"run": cfg.out, "model": str(model_dir), "method": cfg.method, "k": cfg.k})
    else:
        click.echo(f"model folder: {model_dir}")
