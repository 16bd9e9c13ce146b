"""`msfkit dedup INDEX`: groups of near-duplicate images, as CSV or JSON lines."""

from __future__ import annotations

import sys

import click

from msfkit.cli.common import echo_json_lines, json_lines_option


@click.command("dedup", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("index", type=click.Path())
@click.option(
    "--threshold",
    type=click.FloatRange(-1, 1),
    default=0.95,
    show_default=True,
    help="Cosine similarity at or above which two images are duplicates.",
)
@click.option(
    "-k", default=10, show_default=True, type=click.IntRange(1), help="Neighbours looked at per image."
)
@click.option(
    "-o", "--output", "out", type=click.Path(dir_okay=False), help="Write the CSV here instead of stdout."
)
@click.option(
    "--keep", type=click.Choice(["first", "largest", "newest"]),
    help="Write the files to REMOVE instead (one per duplicate, keeping the first, largest or newest of "
    "each group): a list, msfkit never deletes anything.",
)  # fmt: skip
@json_lines_option
def dedup(index, threshold, k, out, keep, as_json):
    """Find groups of near-duplicate images in INDEX (an index folder, or an embedding store):
    one CSV row per image (group, size, path, score), or with --keep the list of files to remove.

    The vectors are read back from the stores the index was built from; a store is searched exactly.
    """
    from msfkit.retrieval.dedup import dedup_any

    df = dedup_any(index, threshold=threshold, k=k, keep=keep, progress=not as_json)
    if as_json:
        echo_json_lines(df.to_dict("records"))
    elif out:
        df.to_csv(out, index=False)
        what = "files to remove" if keep else "images"
        click.echo(f"{df['group'].nunique()} groups, {len(df)} {what} -> {out}", err=True)
    else:
        df.to_csv(sys.stdout, index=False)
