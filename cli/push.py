"""`msfkit push MODEL_DIR REPO_ID`: upload a model folder to the Hugging Face Hub."""

from __future__ import annotations

import click

from msfkit.cli.common import echo_json, json_option


@click.command("push", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repo as private.")
@click.option("--token", envvar="HF_TOKEN", help="Hub token (default: HF_TOKEN or the saved login).")
@click.option("-M", "--message", default="Upload msfkit encoder", show_default=True, help="Commit message.")
@json_option
def push(model_dir: str, repo_id: str, private: bool, token: str | None, message: str, as_json: bool) -> None:
    """Upload MODEL_DIR (config.json, model.safetensors, README.md) to the Hub repo REPO_ID.

    The folder is loaded strictly first, so a broken model never reaches the Hub.
    """
    import msfkit
    from msfkit.models import push_folder
    from msfkit.models.hub import parse_hub_id

    if parse_hub_id(repo_id) is None or "@" in repo_id:
        raise click.BadParameter(f"{repo_id!r} is not a repo id of the form org/name", param_hint="REPO_ID")
    msfkit.load(model_dir)
    url = push_folder(model_dir, repo_id, private=private, token=token, commit_message=message)
    if as_json:
        echo_json({"model": model_dir, "repo": repo_id, "url": url})
    else:
        click.echo(url)
