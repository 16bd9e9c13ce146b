"""`msfkit serve INDEX`: a local server with the index and its model loaded, a JSON API and a page."""

from __future__ import annotations

import ipaddress

import click

from msfkit.cli.common import device_option, echo_json, json_option, model_option, storage_option


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@storage_option
@click.argument("index", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port."
)
@click.option(
    "--allowed-host",
    "allowed",
    multiple=True,
    metavar="NAME",
    help="Also answer requests sent to NAME (a host name, an IP address or *.domain); repeatable. "
    "Only 127.0.0.1, localhost, [::1] and the --host address are answered otherwise.",
)
@model_option
@device_option
@click.option(
    "--max-upload", default="20MB", show_default=True, help="Largest request body (the uploads), e.g. 5MB."
)
@click.option(
    "--max-pixels",
    default=40_000_000,
    show_default=True,
    type=click.IntRange(1),
    help="Largest uploaded image in pixels (read from its header, before decoding).",
)
@json_option
def serve(index, host, port, allowed, model, device, max_upload, max_pixels, as_json):
    """Search INDEX in the browser and over a JSON API, with the index and its model kept loaded.

    Open the printed URL: drop an image to see its neighbours, click one to search from it, and
    browse near-duplicate groups. Only the index's own images are ever served, by row number,
    and only to requests addressed to the server's own names (a web page that points its name at
    this machine is refused). The API is documented in docs/serve.md.

    \b
      msfkit serve index                      # http://127.0.0.1:8000/
      msfkit serve index --port 0             # a free port (the URL is printed)
      msfkit serve index --host 0.0.0.0 --allowed-host photos.lan   # reached as http://photos.lan:8000/
    """
    try:
        from msfkit.serve import Backend, Limits
        from msfkit.serve.app import create_app, run
        from msfkit.serve.middleware import allowed_hosts
    except ImportError as e:
        raise click.ClickException(
            f"msfkit serve needs the serve extra ({e.name} is missing): pip install 'msfkit[serve]'"
        ) from None
    from msfkit.models.runtime import resolve_device
    from msfkit.sizes import parse_size

    limits = Limits(upload_bytes=parse_size(max_upload, "--max-upload"), upload_pixels=max_pixels)
    hosts = allowed_hosts(host, allowed)
    backend = Backend.open(index, model=model, device=resolve_device(device), limits=limits)
    if not _loopback(host):
        click.echo(
            f"msfkit serve: listening on {host}: anyone who can reach it can search and view every "
            "image of this index (browsers elsewhere: give the name they use with --allowed-host)",
            err=True,
        )
    if backend.model_note:
        click.echo(f"msfkit serve: {backend.model_note}", err=True)

    def ready(url: str) -> None:  # --json: one object a script can read the URL from
        model_name = backend.index.model.get("name")
        if as_json:
            loaded = backend.encoder is not None
            echo_json({"url": url, "rows": len(backend), "model": model_name, "model_loaded": loaded})
        else:
            click.echo(f"msfkit serve: {url} ({len(backend)} images, model {model_name}); Ctrl-C stops")

    run(create_app(backend, hosts=hosts), host=host, port=port, ready=ready)


def _loopback(host: str) -> bool:
    """True for an address only this machine reaches (localhost, 127.0.0.0/8, ::1)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
