"""`msfkit index STORE... -o INDEX`, `msfkit index --add INDEX STORE...`: stores -> faiss index folder."""

from __future__ import annotations

import click

from msfkit.cli.common import echo_json, json_option, ray_options, storage_option


@click.command("index", context_settings={"help_option_names": ["-h", "--help"]})
@storage_option
@click.argument("stores", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(file_okay=False), help="Index folder to write.")
@click.option(
    "--add",
    "add_to",
    type=click.Path(file_okay=False),
    help="Add the STORES' vectors to this existing index folder instead of building one.",
)
@click.option(
    "--type",
    "kind",
    type=click.Choice(["auto", "flat", "hnsw", "ivf", "ivfpq"]),
    default="auto",
    show_default=True,
    help="auto: exact while cheap, HNSW or IVF-Flat while they fit --memory, IVF-PQ beyond.",
)
@click.option(
    "--workload",
    type=click.Choice(["interactive", "batch"]),
    default="interactive",
    show_default=True,
    help="batch: an IVF-Flat with 4x the lists and an HNSW coarse quantizer, for many queries at "
    "once (more batch queries/s, several times the build time).",
)
@click.option(
    "--memory",
    default="4GB",
    show_default=True,
    help="RAM the index may take when searched, e.g. 512MB, 8GB (with --on-disk: centroids and codebooks).",
)
@click.option(
    "--on-disk",
    is_flag=True,
    help="Keep the IVF lists in index.ivfdata, searched memory-mapped: an index larger than RAM.",
)
@ray_options("fill the pieces of an on-disk index in parallel Ray tasks (implies --on-disk).")
@click.option(
    "--recall",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.95,
    show_default=True,
    help="recall@10 target (vs exact search, on held-out queries) that nprobe / efSearch are tuned to.",
)
@click.option("--force", is_flag=True, help="Replace INDEX if it exists.")
@json_option
def index(stores, out, add_to, kind, workload, memory, on_disk, engine, address, recall, force, as_json):
    """Build a faiss index folder from one or more embedding STORES (or --add them to one).

    \b
      msfkit index store -o index
      msfkit index store --type ivfpq --memory 1GB -o index
      msfkit index store --on-disk --memory 1GB -o index        # larger than RAM
      msfkit index store --workload batch -o index              # for many queries at once
      msfkit index store --engine ray --address auto -o index   # in pieces, on a Ray cluster
      msfkit index --add index new-store
    """
    import msfkit
    from msfkit.outputs import INDEX, check_output
    from msfkit.sizes import format_bytes

    if add_to and (on_disk or engine != "local" or workload != "interactive"):
        raise click.UsageError("--on-disk, --engine and --workload apply to a build (-o OUT), not to --add")
    if add_to and out:
        raise click.UsageError("give either -o OUT (build) or --add INDEX, not both")
    if add_to:
        info = msfkit.open_index(add_to).add(list(stores)).info
        where = add_to
    elif out:
        check_output(out, force=force, kind=INDEX)
        opts = {"kind": kind, "workload": workload, "memory": memory, "recall": recall}
        opts |= {"progress": not as_json, "on_disk": on_disk, "engine": engine, "address": address}
        info = msfkit.build_index(list(stores), out, force=force, **opts).info
        where = out
    else:
        raise click.UsageError("give -o OUT to build an index, or --add INDEX to extend one")
    r = info["recall"]
    if as_json:
        echo_json({"index": where, **info})
        return
    params = ", ".join(f"{k}={v}" for k, v in info["search_params"].items()) or "exact"
    click.echo(f"{where}: {info['count']} x {info['dim']} vectors, {info['factory']} ({params})")
    size = format_bytes(info["build"]["estimated_bytes"])
    if info["storage"] == "disk":
        size += f" on disk, {format_bytes(info['build']['resident_bytes'])} in RAM when searched"
    click.echo(f"  chosen because: {info['build']['reason']}; about {size}")
    if r.get("stale"):
        click.echo("  recall not re-measured: a store the index was built from is gone or changed", err=True)
    else:
        click.echo(
            f"  recall@10 {r['recall_at_10']:.3f} on {r['queries']} held-out queries (target {r['target']}), "
            f"median latency {r['latency_ms_median']:.2f} ms, {r['qps']:.0f} queries/s"
        )
        if not r["target_met"]:
            click.echo(
                f"  warning: recall target {r['target']} not reached; try --type ivf/hnsw or more --memory",
                err=True,
            )
