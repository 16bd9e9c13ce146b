"""`msfkit dedup INDEX`: groups of near-duplicate images, as CSV or JSON lines, and as pictures;
with `--against TEST`, the TEST images that leak into INDEX (a split's check)."""

from __future__ import annotations

from functools import partial

import click

from msfkit.cli.common import (
    check_outputs,
    device_option,
    echo_json_lines,
    force_option,
    json_lines_option,
    storage_option,
)


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
@storage_option
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
    help="With --keep or --keep-fraction: the files to remove, one exact path a line (for xargs -d '\\n'), "
    "instead of CSV.",
)
@click.option(
    "--groups",
    "grouping",
    type=click.Choice(["connected", "centre"]),
    default="connected",
    show_default=True,
    help="connected: chains of near pairs are one group; centre: one representative per group and only "
    "the images near IT (column centre: its row), never a chain.",
)
@click.option(
    "--keep-fraction",
    "fraction",
    type=click.FloatRange(0, 1, min_open=True),
    help="A size budget instead of --threshold: write the files to REMOVE so that this share of the "
    "collection stays, the most distinct (the closest pair loses one first; --keep decides which).",
)
@click.option(
    "--against",
    "test",
    type=click.Path(),
    metavar="TEST",
    help="List the images of TEST (an index or a store, same model) with a near copy in INDEX: leaks "
    "between splits (row, path, label, match_row, match, match_label, score).",
)
@click.option("--fail-on-leak", is_flag=True, help="With --against: exit 1 when any TEST image leaks.")
@click.option("--grid", type=click.Path(dir_okay=False), help="Write a contact sheet PNG of the groups here.")
@click.option("--html", type=click.Path(dir_okay=False), help="Write an HTML gallery of the groups here.")
@force_option
@device_option
@json_lines_option
def dedup(
    index,
    threshold,
    k,
    out,
    keep,
    as_paths,
    grouping,
    fraction,
    test,
    fail_on_leak,
    grid,
    html,
    force,
    device,
    as_json,
):
    """Find groups of near-duplicate images in INDEX (an index folder, or an embedding store):
    one CSV row per image (group, size, path, label, score), or with --keep the list of files to remove.
    With --against TEST: the images of TEST that have a near copy in INDEX (a leak between splits), the
    threshold 'auto' measured on INDEX.

    The vectors are read back from the stores the index was built from; a store is searched exactly.
    The CSV is for spreadsheets (a name that starts like a formula gets a leading '); --json and
    --paths keep the exact names, for scripts.

    \b
      msfkit dedup index --threshold auto --html groups.html
      msfkit dedup index --threshold 0.97 --keep largest -o remove.csv
      msfkit dedup index --keep largest --paths -o remove.txt   # then: xargs -d '\\n' ... < remove.txt
      msfkit dedup index --groups centre                        # no chains: each group one centre
      msfkit dedup index --keep-fraction 0.9 -o remove.csv      # the 10% most redundant
      msfkit dedup train --against test --threshold auto --fail-on-leak
    """
    from msfkit.data.csv_writer import write_csv
    from msfkit.outputs import is_index_folder
    from msfkit.retrieval.dedup import find_duplicates, path_lines
    from msfkit.retrieval.index import open_index

    ctx = click.get_current_context()
    _check_usage(
        ctx,
        keep=keep,
        as_paths=as_paths,
        as_json=as_json,
        grouping=grouping,
        fraction=fraction,
        test=test,
        fail_on_leak=fail_on_leak,
    )
    check_outputs(force, out, grid, html)
    device = device if threshold == "auto" else None  # a name, resolved where images are embedded
    # an index folder opened once: its rows' images are drawn only while they are the embedded files
    index = open_index(index) if is_index_folder(index) else index
    if test is not None:
        leaks = _leaks(
            index, test, threshold=threshold, out=out, grid=grid, html=html, device=device, as_json=as_json
        )
        if fail_on_leak and leaks:
            ctx.exit(1)
        return
    found = find_duplicates(
        index,
        threshold=threshold,
        k=k,
        keep=keep,
        groups=grouping,
        fraction=fraction,
        progress=not as_json,
        device=device,
    )
    if found.calibration is not None:
        click.echo(found.calibration.explain(), err=True)
    df = found.groups if found.removals is None else found.removals
    lines = path_lines(df["path"]) if as_paths else None
    if grid or html:  # the renderer reads images (and so loads torch): only for pictures
        from msfkit.retrieval.render import groups_as_results

        _pictures(partial(groups_as_results, found.groups), grid, html, "msfkit dedup", index)
    with click.open_file(out or "-", "w", atomic=out is not None) as f:
        if as_json:
            echo_json_lines(df.to_dict("records"), file=f)
        elif as_paths:
            f.write(lines)
        else:
            write_csv(df, f)
    if out:
        what = "images" if found.removals is None else "files to remove"
        click.echo(f"{df['group'].nunique()} groups, {len(df)} {what} -> {out}", err=True)


def _check_usage(ctx, *, keep, as_paths, as_json, grouping, fraction, test, fail_on_leak) -> None:
    """Refuse, before any work, options that do not go together."""
    if as_paths and (keep is None and fraction is None or as_json):
        raise click.UsageError(
            "--paths lists the files to remove: give it with --keep or --keep-fraction, without --json"
        )
    if fail_on_leak and test is None:
        raise click.UsageError("--fail-on-leak checks --against TEST: give both")
    if test is not None and (keep or as_paths or fraction is not None or grouping != "connected"):
        raise click.UsageError(
            "--against lists leaks: give it without --keep, --paths, --keep-fraction or --groups"
        )
    explicit = ctx.get_parameter_source("threshold") != click.core.ParameterSource.DEFAULT
    if fraction is not None and (explicit or grouping != "connected"):
        raise click.UsageError(
            "--keep-fraction is a size budget instead of --threshold and --groups: give one"
        )


def _leaks(train, test, *, threshold, out, grid, html, device, as_json) -> int:
    """`--against`: the leaking TEST images as CSV or JSON lines, and as pictures; how many leak."""
    from msfkit.data.csv_writer import write_csv
    from msfkit.retrieval.leaks import find_leaks

    found = find_leaks(train, test, threshold=threshold, progress=not as_json, device=device)
    if found.calibration is not None:
        click.echo(found.calibration.explain(), err=True)
    _pictures(lambda limit: found.results, grid, html, "msfkit dedup --against", train)
    with click.open_file(out or "-", "w", atomic=out is not None) as f:
        if as_json:
            echo_json_lines(found.table.to_dict("records"), file=f)
        else:
            write_csv(found.table, f)
    where = f" -> {out}" if out else ""
    click.echo(
        f"{len(found.table)} TEST images with a near copy (>= {found.threshold:.4f}) in {train}{where}",
        err=True,
    )
    return len(found.table)


def _pictures(results, grid: str | None, html: str | None, title: str, index) -> None:
    """The contact sheet and the HTML gallery, where asked for, of `results(limit)`: search results'
    shape, at most `limit` images a line (None: all); rows of `index`, when it is an opened index
    folder, are read through their stores' facts (`msfkit.data.row_files`)."""
    if not (grid or html):
        return
    from msfkit.index.folder import IndexFolder
    from msfkit.retrieval.render import contact_sheet, gallery_html

    index = index if isinstance(index, IndexFolder) else None
    if grid:
        contact_sheet(results(16), grid, index=index)
        click.echo(f"contact sheet -> {grid}", err=True)
    if html:
        gallery_html(results(None), html, title=title, index=index)
        click.echo(f"gallery -> {html}", err=True)
