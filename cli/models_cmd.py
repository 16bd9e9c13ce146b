"""`msfkit models info MODEL`: what a model folder or Hub id holds."""

from __future__ import annotations

import click

from msfkit.cli.common import echo_json, json_option


@click.group("models", context_settings={"help_option_names": ["-h", "--help"]})
def models() -> None:
    """Inspect model folders and Hub models."""


@models.command("info")
@click.argument("model", envvar="MSFKIT_MODEL")
@json_option
def info(model: str, as_json: bool) -> None:
    """Show the architecture, embedding size, preprocessing and provenance of MODEL.

    MODEL is a model folder or a Hub id org/name[@revision].
    """
    import msfkit

    enc = msfkit.load(model)
    n_params = sum(p.numel() for p in enc.parameters())
    record = {
        "model": model,
        "revision": enc.revision,
        "fingerprint": enc.fingerprint,
        "parameters": n_params,
        **enc.config.to_dict(),
    }
    if as_json:
        echo_json(record)
        return
    c = enc.config
    rows = [
        ("model", model + (f" @ {enc.revision}" if enc.revision else "")),
        ("architecture", f"{c.arch} ({c.stem} stem), {n_params / 1e6:.1f}M parameters"),
        ("embedding", f"{c.embedding_dim}-d, from the {c.network} network"),
        ("preprocessing", f"resize {c.resize} {c.interpolation} -> crop {c.image_size}"),
        ("fingerprint", enc.fingerprint),
    ]
    rows += [(f"  {k}", str(v)) for k, v in sorted(c.provenance.items())]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")
