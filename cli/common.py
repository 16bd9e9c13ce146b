"""Options and error handling shared by every command (see DESIGN.md "Conventions")."""

from __future__ import annotations

import json
from typing import Any

import click

from msfkit.models.errors import MsfkitError

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


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without one is a user error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MsfkitError("--device cuda: no CUDA device is visible to torch")
    return device


def echo_json(obj: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(obj, default=str))
