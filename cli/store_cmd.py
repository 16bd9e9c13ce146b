"""`msfkit store export STORE OUT`: an embedding store as one table other tools read."""

from __future__ import annotations

import click

from msfkit.cli.common import echo_json, json_option, storage_option


@click.group("store", context_settings={"help_option_names": ["-h", "--help"]})
def store() -> None:
    """Work with embedding stores (what `msfkit embed` writes)."""


@store.command("export")
@storage_option
@click.argument("store_dir", metavar="STORE")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@json_option
def export(store_dir: str, out: str, force: bool, as_json: bool) -> None:
    """Write STORE as one table OUT: .parquet (metadata + a vector column), .csv, or .npy (vectors).

    \b
      msfkit store export store embeddings.parquet
      msfkit store export store embeddings.csv      # lightly's embeddings.csv layout
      msfkit store export store vectors.npy
    """
    import msfkit
    from msfkit.outputs import check_output

    check_output(out, force=force)
    opened = msfkit.open_store(store_dir)
    path = opened.export(out)
    if as_json:
        echo_json({"store": store_dir, "out": str(path), "rows": len(opened), "dim": opened.dim})
    else:
        click.echo(f"{len(opened)} x {opened.dim} -> {path}")
