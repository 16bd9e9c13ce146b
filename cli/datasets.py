"""`msfkit datasets export NAME DIR`: a named dataset as class folders of PNG files."""

from __future__ import annotations

from pathlib import Path

import click

from msfkit.cli.common import echo_json, json_option


@click.group("datasets", context_settings={"help_option_names": ["-h", "--help"]})
def datasets() -> None:
    """Named datasets that need no download (Fashion-MNIST from the Debian package)."""


@datasets.command("export")
@click.argument("name", type=click.Choice(["fashion-mnist"]))
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--split",
    "splits",
    type=click.Choice(["train", "test"]),
    multiple=True,
    default=("train", "test"),
    show_default=True,
    help="Which splits to write; repeat for several.",
)
@click.option(
    "--per-class",
    type=click.IntRange(1),
    help="Write only the first N images of each class of each split (for quick demos).",
)
@click.option("--force", is_flag=True, help="Write into DIRECTORY even if an earlier export is there.")
@json_option
def export(
    name: str, directory: Path, splits: tuple[str, ...], per_class: int | None, force: bool, as_json: bool
) -> None:
    """Write dataset NAME under DIRECTORY as SPLIT/CLASS/NNNNN.png.

    Every folder-based command can then use it, e.g.
    `msfkit eval -m MODEL --train DIRECTORY/train --val DIRECTORY/test`.
    """
    import msfkit
    from msfkit.outputs import DATASET, check_output

    check_output(directory, force=force, kind=DATASET)
    counts = msfkit.datasets.export(name, directory, splits, per_class)
    if as_json:
        echo_json({"dataset": name, "directory": str(directory), "written": counts})
        return
    for split, n in counts.items():
        click.echo(f"{split}: {n} images -> {directory / split}")
