"""`msfkit search INDEX QUERY...`: nearest neighbours as a table, JSON lines, CSV, contact sheet or HTML."""

from __future__ import annotations

import click

from msfkit.cli.common import (
    check_outputs,
    device_option,
    echo_json_lines,
    force_option,
    json_lines_option,
    model_option,
    storage_option,
)


@click.command("search", context_settings={"help_option_names": ["-h", "--help"]})
@storage_option
@click.argument("index", type=click.Path())
@click.argument("queries", nargs=-1, required=True)
@click.option("-k", default=10, show_default=True, type=click.IntRange(1), help="Neighbours per query.")
@model_option
@device_option
@json_lines_option
@click.option("--csv", "as_csv", is_flag=True, help="CSV instead of the table.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write the table, CSV or JSON to this file."
)
@click.option("--grid", type=click.Path(dir_okay=False), help="Write a contact sheet PNG here.")
@click.option("--html", type=click.Path(dir_okay=False), help="Write a self-contained HTML gallery here.")
@force_option
def search(index, queries, k, model, device, as_json, as_csv, output, grid, html, force):
    """Find the K nearest indexed images of each QUERY.

    A QUERY is an image, a folder of images, a store folder, or STORE:ROWS (e.g. store:0,5,10-20).
    Images are embedded with the index's own model; -m, when given, must be that model.
    --csv is for spreadsheets (names that start like a formula get a leading '); --json keeps the
    exact names, for scripts.

    \b
      msfkit search index cat.jpg -k 5
      msfkit search index queries/ --grid sheet.png --html gallery.html
    """
    import msfkit
    from msfkit.models.errors import MsfkitError
    from msfkit.retrieval.search import COLUMNS, search_hits

    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")
    check_outputs(force, output, grid, html)
    opened = msfkit.open_index(index)
    hits = search_hits(opened, list(queries), k=k, model=model, device=device)  # no torch for store rows
    for query, reason in hits.errors:
        click.echo(f"skipped query {query}: {reason}", err=True)
    if not hits.records:
        raise MsfkitError("no query could be read")
    if grid or html or as_csv:  # these take a DataFrame; the table and JSON lines need no pandas
        import pandas as pd

        df = pd.DataFrame.from_records(hits.records, columns=COLUMNS)
    if grid:
        from msfkit.retrieval.render import contact_sheet

        contact_sheet(df, grid, index=opened)
    if html:
        from msfkit.retrieval.render import gallery_html

        gallery_html(df, html, index=opened)
    with click.open_file(output or "-", "w", atomic=output is not None) as out:
        if as_json:
            echo_json_lines(hits.records, file=out)
        elif as_csv:
            from msfkit.data.csv_writer import write_csv

            write_csv(df, out)
        else:
            _table(hits.records, out)
    if output:
        queries_seen = len({hit["query"] for hit in hits.records})
        click.echo(f"{queries_seen} queries, {len(hits.records)} results -> {output}", err=True)


def _table(records: list[dict], out) -> None:
    """The hits of each query under its name (a query named twice: its hits under the first)."""
    by_query: dict[str, list[dict]] = {}
    for hit in records:
        by_query.setdefault(hit["query"], []).append(hit)
    for query, hits in by_query.items():
        click.echo(f"query: {_shown(query)}", file=out)
        click.echo(f"{'rank':>6}  {'score':>7}  path", file=out)
        for hit in hits:
            click.echo(f"{hit['rank']:>6}  {hit['score']:>7.4f}  {_shown(hit['path'])}", file=out)


def _shown(path) -> str:
    """A path relative to the current folder when it is below it (queries and hits alike)."""
    import os

    text = str(path)
    if os.path.isabs(text):
        rel = os.path.relpath(text)
        if not rel.startswith(".."):
            return rel
    return text
