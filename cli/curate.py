"""`msfkit curate outliers|label-issues|select INDEX`: curating a collection from its embeddings.

One group for the curation room (`msfkit.curate`): the three questions share their input (an index
folder, or a store searched exactly) and their neighbours, and read together in `msfkit curate -h`.
Progress bars show on a terminal only; a log or a pipe gets the results and one summary line.
"""

from __future__ import annotations

import sys

import click

from msfkit.cli.common import check_outputs, echo_json_lines, force_option, json_lines_option, storage_option

CONTEXT = {"help_option_names": ["-h", "--help"]}
GALLERY_NEIGHBOURS = 8  # neighbours drawn beside each outlier
OUTLIER_SCORES = ("knn", "mahalanobis")  # msfkit.curate.outliers.SCORES, not imported (pandas); a test checks

index_argument = click.argument("index", type=click.Path())


def k_option(default: int):
    """-k, shown with the library's default (the command's DEFAULT_K in msfkit.curate; a test checks
    they agree); unset, None reaches the library, which applies its default."""
    return click.option(
        "-k", type=click.IntRange(1), help=f"Neighbours looked at per image.  [default: {default}]"
    )


@click.group("curate", context_settings=CONTEXT)
def curate() -> None:
    """Curate a collection from its embeddings: outliers, label issues, subsets.

    INDEX is an index folder, or an embedding store (searched exactly).
    """


@curate.command(
    "outliers", context_settings=CONTEXT, short_help="Images unlike the rest, most foreign first."
)
@index_argument
@storage_option
@k_option(10)
@click.option("--top", default=20, show_default=True, type=click.IntRange(1), help="How many to list.")
@click.option(
    "--score",
    type=click.Choice(OUTLIER_SCORES),
    default="knn",
    show_default=True,
    help="knn: far from its k nearest; mahalanobis: far from the whole collection's spread.",
)
@click.option(
    "-o", "--output", "out", type=click.Path(dir_okay=False), help="Write the CSV (or --json) here."
)
@click.option(
    "--html",
    type=click.Path(dir_okay=False),
    help="Write an HTML gallery here: each outlier framed, then its nearest neighbours.",
)
@force_option
@json_lines_option
def outliers(index, k, top, score, out, html, force, as_json):
    """List the images of INDEX least like the rest, most foreign first.

    One CSV row per image: rank, row, path, label, score, in_degree. score is, with --score knn,
    the mean cosine distance to the image's k nearest neighbours; with --score mahalanobis, the
    squared Mahalanobis distance from the collection's mean (it finds a batch of foreign images
    that are each other's neighbours; it needs more images than dimensions). in_degree: how many
    images have it among their own k nearest (a foreign image is rarely anyone's neighbour).

    \b
      msfkit curate outliers index --top 50 -o outliers.csv --html outliers.html
    """
    import msfkit
    from msfkit.curate.outliers import DEFAULT_K

    check_outputs(force, out, html)
    k = k or DEFAULT_K
    table = msfkit.outliers(index, k=k, top=top, score=score, progress=sys.stderr.isatty())
    if html:
        _gallery(index, table, k, html)
    _write_rows(table, out, as_json, f"{len(table)} outliers")


@curate.command("label-issues", context_settings=CONTEXT, short_help="Labels their neighbours vote against.")
@index_argument
@storage_option
@k_option(50)
@click.option(
    "-o", "--output", "out", type=click.Path(dir_okay=False), help="Write the CSV (or --json) here."
)
@force_option
@json_lines_option
def label_issues(index, k, out, force, as_json):
    """List the images whose neighbours vote for another label than their own.

    One CSV row each (row, path, label, suggested, confidence, self_confidence). An image's
    probability of a class is the share of its k nearest others labelled so; self_confidence is
    that of its own label, confidence that of the suggested one. Labels are the class folders the
    images were embedded from. The method is cleanlab's confident learning on k-NN predictions: an
    image is listed when the most probable class that reaches its class's threshold (the mean
    probability of the class over its own images) is not its label. The list is ranked, least
    self-confident first: the mistakes are at its top, so read (or cut) it from the top.

    \b
      msfkit curate label-issues index -o issues.csv
    """
    import msfkit

    check_outputs(force, out)
    table = msfkit.label_issues(index, k=k, progress=sys.stderr.isatty())
    _write_rows(table, out, as_json, f"{len(table)} label issues")


@curate.command("select", context_settings=CONTEXT, short_help="A subset of N images that covers the rest.")
@index_argument
@storage_option
@click.option("--budget", required=True, type=click.IntRange(1), help="How many images to choose.")
@click.option(
    "--strategy",
    type=click.Choice(["coverage", "centres", "random"]),
    default="coverage",
    show_default=True,
    help="coverage: greedy k-center (each next image the farthest from those chosen); centres: the "
    "images nearest k-means centroids; random.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Chooses the same images again.")
@click.option(
    "-o", "--output", "out", type=click.Path(dir_okay=False), help="Write the list (or --json) here."
)
@force_option
@json_lines_option
def select(index, budget, strategy, seed, out, force, as_json):
    """Choose a subset of INDEX: --budget images that cover it, sit at its centres, or at random.

    Writes their exact paths, one a line, in the order chosen (--json: row, path, label), and on
    stderr the coverage radius: the largest cosine distance from any image to its nearest chosen one.

    \b
      msfkit curate select index --budget 500 -o subset.txt
      msfkit curate select index --budget 500 --strategy random --json
    """
    import msfkit
    from msfkit.retrieval.dedup import path_lines

    check_outputs(force, out)
    chosen = msfkit.select(index, budget, strategy=strategy, seed=seed, progress=sys.stderr.isatty())
    lines = None if as_json else path_lines(chosen.rows["path"])
    with click.open_file(out or "-", "w", atomic=out is not None) as f:
        if as_json:
            echo_json_lines(chosen.rows.to_dict("records"), file=f)
        else:
            f.write(lines)
    where = f" -> {out}" if out else ""
    click.echo(f"{strategy}: {len(chosen)} images, coverage radius {chosen.radius:.4f}{where}", err=True)


def _gallery(index, table, k: int, html: str) -> None:
    """The outliers as search results (each one the query, its k nearest neighbours the hits), drawn
    as one HTML page."""
    import pandas as pd

    from msfkit.curate import neighbours_of
    from msfkit.retrieval.render import gallery_html

    hits = neighbours_of(index, table["row"], min(k, GALLERY_NEIGHBOURS))
    outlier = table.set_index("row").loc[hits["row"]]
    names = [f"{o.rank}. score {o.score:.3f}, neighbour of {o.in_degree}" for o in outlier.itertuples()]
    results = pd.DataFrame(
        {
            "query": names,
            "query_path": list(outlier["path"]),
            "rank": hits["rank"],
            "score": hits["score"],
            "row": hits["neighbour"],
            "path": hits["path"],
            "label": hits["label"],
        }
    )
    gallery_html(results, html, title="msfkit curate outliers")
    click.echo(f"gallery -> {html}", err=True)


def _write_rows(table, out: str | None, as_json: bool, what: str) -> None:
    """`table` as CSV (the one CSV writer) or JSON Lines, to `out` or stdout; a summary line on stderr."""
    from msfkit.data.csv_writer import write_csv

    with click.open_file(out or "-", "w", atomic=out is not None) as f:
        if as_json:
            echo_json_lines(table.to_dict("records"), file=f)
        else:
            write_csv(table, f)
    if out:
        click.echo(f"{what} -> {out}", err=True)
