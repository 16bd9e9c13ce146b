"""Options and error handling shared by every command (the conventions in README.md, "Using it")."""

from __future__ import annotations

import functools
import json
import math
import os
from typing import Any

import click

model_option = click.option(
    "-m",
    "--model",
    envvar="MSFKIT_MODEL",
    show_envvar=True,
    help="Model folder or Hub id org/name[@revision].",
)
force_option = click.option(
    "--force", is_flag=True, help="Replace output files that exist (never a store, index or model's files)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable: one JSON object.")
json_lines_option = click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output: JSON Lines, one object per row."
)
precision_option = click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "auto"]),
    default="fp32",
    show_default=True,
    help="Model precision; bf16 runs the backbone under autocast (CPU and GPU); auto is bf16 where "
    "the device computes it natively (CUDA, a CPU with AVX512-BF16 or AMX), else fp32. A store "
    "records what it ran in.",
)
device_option = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where to run the model.",
)


def ray_options(what: str):
    """`--engine local|ray` (ray: `what`) and `--address`, the same for every command that scales out."""
    engine = click.option(
        "--engine",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help=f"ray: {what}",
    )
    address = click.option(
        "--address",
        help="Ray cluster: auto (the one running here) or HOST:PORT; default RAY_ADDRESS or a new one.",
    )
    return lambda command: engine(address(command))


def storage_option(command):
    """`--storage-option KEY=VALUE` (repeatable): fsspec options for every URL the command is given.

    The options become fsspec's defaults for the protocols of the command's URL arguments and
    options (`msfkit.data.storage.use_storage_options`), before the command runs, so every layer
    that opens one of them (stores, indexes, images, archives) gets them."""

    @functools.wraps(command)
    def with_options(*args, storage_options: tuple[str, ...] = (), **kwargs):
        if storage_options:
            from msfkit.data.storage import is_url, parse_storage_options, use_storage_options

            targets = [v for v in _strings(kwargs.values()) if is_url(v)]
            use_storage_options(parse_storage_options(storage_options), targets)
        return command(*args, **kwargs)

    return click.option(
        "--storage-option",
        "storage_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="An fsspec option for the URLs given (s3://, gs://, hf://...); repeatable. A dotted key "
        "nests: client_kwargs.endpoint_url=http://minio:9000; a JSON value is read as JSON: anon=true.",
    )(with_options)


def _strings(values) -> list[str]:
    """The text (and path) values among a command's arguments, those inside tuples too."""
    out = []
    for value in values:
        if isinstance(value, (tuple, list)):
            out += _strings(value)
        elif isinstance(value, (str, os.PathLike)):
            out.append(os.fspath(value))
    return out


def check_outputs(force: bool, *paths: str | None) -> None:
    """The output guard (`msfkit.outputs.check_output`) on each file output given, before any work."""
    from msfkit.outputs import check_output

    for path in paths:
        if path is not None and path != "-":
            check_output(path, force=force)


def to_json(obj: Any) -> str:
    """Strict JSON (what every parser reads): NaN, infinities and pandas' missing values become null,
    numpy scalars plain numbers, anything else its string."""
    return json.dumps(_plain(obj), default=str, allow_nan=False)


def echo_json(obj: Any) -> None:
    """One JSON document on stdout."""
    click.echo(to_json(obj))


def echo_json_lines(records, file=None) -> None:
    """One JSON object per line (search results, duplicate groups): the --json shape of row commands."""
    for record in records:
        click.echo(to_json(record), file=file)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        obj = obj.item()  # numpy scalar -> Python
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is not None and not isinstance(obj, (str, int, float, bool)) and _is_missing(obj):
        return None
    return obj


def _is_missing(obj: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(obj)) if pd.api.types.is_scalar(obj) else False
    except (ImportError, TypeError, ValueError):
        return False


def warn_slow_bf16(precision: str, device: str) -> None:
    """On stderr: one line when --precision bf16 would be emulated on this CPU (many times slower)."""
    from msfkit.models.runtime import resolve_device, slow_bf16_warning

    warning = precision == "bf16" and slow_bf16_warning(precision, resolve_device(device), "--precision fp32")
    if warning:
        click.echo(warning, err=True)
