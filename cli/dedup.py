"""`msfkit dedup INDEX`: groups of near-duplicate images, as CSV or JSON lines, and as pictures."""

from __future__ import annotations

import click

from msfkit.cli.common import check_outputs, device_option, echo_json_lines, force_option, json_lines_option


class Threshold(click.ParamType):
    """A cosine similarity in [-1, 1], or `auto`."""

    name = "FLOAT|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value == "auto":
            return value
        try:
            number = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'auto'", param, ctx)
        if not -1 <= number <= 1:
            self.fail(f"{value} is not a cosine similarity between -1 and 1", param, ctx)
        return number


@click.command("dedup", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("index", type=click.Path())
@click.option(
    "--threshold",
    type=Threshold(),
    default=0.95,
    show_default=True,
    help="Cosine similarity at or above which two images are duplicates; 'auto' measures it on the "
    "collection (copies of its own images against their nearest distinct neighbours) and says why.",
)
@click.option(
    "-k", default=10, show_default=True, type=click.IntRange(1), help="Neighbours looked at per image."
)
@click.option(
    "-o", "--output", "out", type=click.Path(dir_okay=False), help="Write the CSV (or --json, --paths) here."
)
@click.option(
    "--keep", type=click.Choice(["first", "largest", "newest"]),
    help="Write the files to REMOVE instead (one per duplicate, keeping the first, largest or newest of "
    "each group): a list, msfkit never deletes anything.",
)  # fmt: skip
@click.option(
    "--paths",
    "as_paths",
    is_flag=True,
    help="With --keep: the files to remove, one exact path a line (for xargs -d '\\n'), instead of CSV.",
)
@click.option("--grid", type=click.Path(dir_okay=False), help="Write a contact sheet PNG of the groups here.")
@click.option("--html", type=click.Path(dir_okay=False), help="Write an HTML gallery of the groups here.")
@force_option
@device_option
@json_lines_option
def dedup(index, threshold, k, out, keep, as_paths, grid, html, force, device, as_json):
    """Find groups of near-duplicate images in INDEX (an index folder, or an embedding store):
    one CSV row per image (group, size, path, label, score), or with --keep the list of files to remove.

    The vectors are read back from the stores the index was built from; a store is searched exactly.
    The CSV is for spreadsheets (a name that starts like a formula gets a leading '); --json and
    --paths keep the exact names, for scripts.

    \b
      msfkit dedup index --threshold auto --html groups.html
      msfkit dedup index --threshold 0.97 --keep largest -o remove.csv
      msfkit dedup index --keep largest --paths -o remove.txt   # then: xargs -d '\\n' ... < remove.txt
    """
    from msfkit.data.csv_writer import write_csv
    from msfkit.models.runtime import resolve_device
    from msfkit.retrieval.dedup import find_duplicates, path_lines

    if as_paths and (keep is None or as_json):
        raise click.UsageError("--paths lists the files to remove: give it with --keep, without --json")
    check_outputs(force, out, grid, html)
    device = resolve_device(device) if threshold == "auto" else None
    found = find_duplicates(index, threshold=threshold, k=k, keep=keep, progress=not as_json, device=device)
    if found.calibration is not None:
        click.echo(found.calibration.explain(), err=True)
    df = found.groups if keep is None else found.removals
    lines = path_lines(df["path"]) if as_paths else None
    _pictures(found.groups, grid, html)
    with click.open_file(out or "-", "w", atomic=out is not None) as f:
        if as_json:
            echo_json_lines(df.to_dict("records"), file=f)
        elif as_paths:
            f.write(lines)
        else:
            write_csv(df, f)
    if out:
        what = "files to remove" if keep else "images"
        click.echo(f"{df['group'].nunique()} groups, {len(df)} {what} -> {out}", err=True)


def _pictures(groups, grid: str | None, html: str | None) -> None:
    from msfkit.retrieval.render import contact_sheet, gallery_html, groups_as_results

    if grid:
        contact_sheet(groups_as_results(groups, limit=16), grid)
        click.echo(f"contact sheet -> {grid}", err=True)
    if html:
        gallery_html(groups_as_results(groups), html, title="msfkit dedup")
        click.echo(f"gallery -> {html}", err=True)
