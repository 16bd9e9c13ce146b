"""Options and error handling shared by every command (the conventions in README.md, "Using it")."""

from __future__ import annotations

import json
from typing import Any

import click

model_option = click.option(
    "-m",
    "--model",
    envvar="MSFKIT_MODEL",
    show_envvar=True,
    help="Model folder or Hub id org/name[@revision].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
precision_option = click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="Model precision; bf16 runs the backbone under autocast (CPU and GPU).",
)
device_option = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where to run the model.",
)


def echo_json(obj: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(obj, default=str))
