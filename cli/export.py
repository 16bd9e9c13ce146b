"""`msfkit export CHECKPOINT OUT`: a training or reference checkpoint -> model folder."""

from __future__ import annotations

import click

from msfkit.cli.common import echo_json, json_option


@click.command("export", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--network",
    type=click.Choice(["online", "target"]),
    default="online",
    show_default=True,
    help="Which MSF network to export: the online backbone (as the paper evaluates) or the EMA target.",
)
@click.option(
    "--image-size", type=int, help="Centre-crop size for the config (default: 224, or 32 for a cifar stem)."
)
@click.option("--resize", type=int, help="Shorter side before the crop (default: image size x 256/224).")
@json_option
def export(
    checkpoint: str, out: str, network: str, image_size: int | None, resize: int | None, as_json: bool
):
    """Write the backbone of CHECKPOINT as a model folder OUT.

    CHECKPOINT is an `msfkit train` run folder or its checkpoint.pt, a checkpoint of the
    reference MSF code (UMBCvision/MSF), or a torchvision ResNet state dict. It is read with
    weights_only=True: nothing in it is executed.
    """
    from msfkit.training.export import export_checkpoint

    enc = export_checkpoint(checkpoint, out, network=network, image_size=image_size, resize=resize)
    c = enc.config
    if as_json:
        echo_json({"out": out, "fingerprint": enc.fingerprint, **c.to_dict()})
    else:
        click.echo(f"exported {c.arch} ({network} network, {c.embedding_dim}-d) to {out}")
