"""`msfkit embed IMAGES... -m MODEL -o STORE`: image folders, lists or files -> an embedding store."""

from __future__ import annotations

import os

import click

from msfkit.cli.common import (
    device_option,
    echo_json,
    json_option,
    model_option,
    precision_option,
    ray_options,
    storage_option,
    warn_slow_bf16,
)


def _parse_shard(ctx, param, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter("expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise click.BadParameter(f"{value}: need 0 <= i < n")
    return i, n


@click.command("embed", context_settings={"help_option_names": ["-h", "--help"]})
@storage_option
@click.argument("images", nargs=-1, required=True, type=click.Path())
@model_option
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(file_okay=False), help="Store folder to write."
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), help="Images per batch [default: 256 on GPU, 32 on CPU]."
)
@click.option("--workers", type=click.IntRange(min=0), help="Decoding processes [default: from the cores].")
@precision_option
@device_option
@click.option(
    "--shard", callback=_parse_shard, metavar="I/N", help="Embed the I-th of N slices into OUT/part-I-of-N."
)
@click.option(
    "--force", "overwrite", is_flag=True, help="Replace a store made with another model, source or settings."
)
@click.option("--strict", is_flag=True, help="Exit 1 when any file could not be embedded.")
@ray_options("Ray workers (one per GPU, else per CPU) embed the shards; this process plans and commits.")
@click.option(
    "--draft/--no-draft",
    default=False,
    show_default=True,
    help="Decode large JPEGs at 1/2-1/8 scale: faster on camera photos, vectors within ~0.99 cosine "
    "of exact. Off: every entry point (Python, search, eval) gives the same vector for an image.",
)
@click.option(
    "--max-pixels", type=click.IntRange(min=1), help="Refuse images with more pixels [default: 89478485]."
)
@click.option(
    "--shard-rows", type=click.IntRange(min=1), default=4096, show_default=True, help="Files per shard."
)
@click.option(
    "--image-column",
    help="Tables: the column of images (bytes, {bytes, path} structs or paths) [default: the one].",
)
@click.option("--label-column", help="Tables: the column of labels [default: label, when there is one].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@json_option
@click.pass_context
def embed(
    ctx: click.Context,
    images: tuple[str, ...],
    model: str | None,
    out: str,
    batch_size: int | None,
    workers: int | None,
    precision: str,
    device: str,
    shard: tuple[int, int] | None,
    overwrite: bool,
    strict: bool,
    engine: str,
    address: str | None,
    draft: bool,
    max_pixels: int | None,
    shard_rows: int,
    image_column: str | None,
    label_column: str | None,
    quiet: bool,
    as_json: bool,
):
    """Embed IMAGES (folders, text files listing paths, image files, or tables of images: Parquet,
    .arrow, saved datasets folders) into the store OUT.

    Bad files (empty, truncated, not images, too many pixels, broken links) never stop the run:
    each is recorded with its reason in OUT/errors.parquet. Run the same command again after an
    interruption and it carries on where it stopped. Under torchrun, ranks share the work and
    write one store; with --engine ray, Ray workers do (the store is the same either way). The
    last line counts embedded / failed / skipped files; the exit code is 1 when the store holds
    no embedding, or with --strict when any file failed.
    """
    import msfkit
    from msfkit.data.images import DEFAULT_MAX_PIXELS
    from msfkit.data.tables import TableOptions
    from msfkit.models.errors import MsfkitError
    from msfkit.outputs import check_not_inside

    check_not_inside(out)  # a store never lands inside a store, index or model folder

    if not model:
        raise MsfkitError("no model: pass -m/--model or set MSFKIT_MODEL")
    if address and engine != "ray":
        raise click.UsageError("--address names a Ray cluster: use it with --engine ray")
    if not quiet:
        warn_slow_bf16(precision, device)
    store = msfkit.embed(
        list(images),
        model,
        out,
        batch_size=batch_size,
        workers=workers,
        precision=precision,
        device=device,
        draft=draft,
        max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
        shard=shard,
        overwrite=overwrite,
        shard_rows=shard_rows,
        engine=engine,
        address=address,
        tables=TableOptions(image_column, label_column),
        progress=not quiet and not as_json,
        announce=not quiet,
    )
    summary = store.run
    if _is_rank0():
        if as_json:
            echo_json(summary.to_dict())
        else:
            click.echo(summary.line())
    if summary.store_embedded == 0 or (strict and summary.store_failed):
        ctx.exit(1)


def _is_rank0() -> bool:
    """Under torchrun only rank 0 reports, so the counts are printed once."""
    return os.environ.get("RANK", "0") == "0"
