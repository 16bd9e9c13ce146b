"""`msfkit export SOURCE OUT`: a checkpoint -> model folder, or a model -> ONNX / TorchScript."""

from __future__ import annotations

from pathlib import Path

import click

from msfkit.cli.common import echo_json, json_option

# Names of model files msfkit does not write: refused in one line, never made into a folder.
_NOT_WRITTEN = (".pth", ".tar", ".bin", ".safetensors", ".tflite", ".h5", ".pb", ".engine", ".mlmodel")


@click.command("export", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source")
@click.argument("out", type=click.Path())
@click.option(
    "--format", "fmt", type=click.Choice(["folder", "onnx", "torchscript"]),
    help="What to write [default: from OUT: .onnx, .pt (TorchScript), else a model folder].",
)  # fmt: skip
@click.option(
    "--network",
    type=click.Choice(["online", "target"]),
    default="online",
    show_default=True,
    help="Which MSF network to export: the online backbone (as the paper evaluates) or the EMA target.",
)
@click.option(
    "--image-size",
    type=int,
    help="Centre-crop size for the config (default: the run's; 224, or 32 for a cifar stem, otherwise).",
)
@click.option(
    "--resize", type=int, help="Shorter side before the crop (default: the size up to 64 px, else x 256/224)."
)
@click.option("--force", is_flag=True, help="Replace OUT if it is a model folder (or export file) already.")
@json_option
def export(
    source: str, out: str, fmt: str | None, network: str, image_size, resize, force: bool, as_json: bool
):
    """Write SOURCE as a model folder OUT, or a model as ONNX / TorchScript for deployment.

    \b
    SOURCE -> model folder: an `msfkit train` run folder or its checkpoint.pt, a checkpoint of
      the reference MSF code (UMBCvision/MSF), or a torchvision ResNet state dict; read with
      weights_only=True: nothing in it is executed.
    SOURCE -> OUT.onnx / OUT.pt: a model folder or Hub id org/name[@revision]; the graph takes
      preprocessed pixels (N, 3, S, S), any N, and returns L2-normalised embeddings; the
      preprocessing is in OUT.onnx.json / OUT.pt.json.

    \b
      msfkit export runs/fm my-model
      msfkit export my-model encoder.onnx
    """
    from msfkit.models.deploy import deploy_format
    from msfkit.models.errors import MsfkitError
    from msfkit.outputs import FILE, MODEL, check_output

    deploy = None if fmt == "folder" else deploy_format(out, fmt)
    check_output(out, force=force, kind=FILE if deploy is not None else MODEL)
    if deploy is not None:
        return _deploy(source, out, deploy, as_json)
    if fmt is None and out.lower().endswith(_NOT_WRITTEN):
        raise MsfkitError(f"{out}: msfkit does not write this format; use .onnx, .pt or a model folder name")
    if Path(out).is_file():
        raise MsfkitError(f"{out}: is a file, not a model folder")
    if not Path(source).exists():
        raise MsfkitError(f"{source}: no such checkpoint or run folder")
    from msfkit.training.export import export_checkpoint

    enc = export_checkpoint(source, out, network=network, image_size=image_size, resize=resize)
    c = enc.config
    if as_json:
        echo_json({"out": out, "fingerprint": enc.fingerprint, **c.to_dict()})
    else:
        click.echo(f"exported {c.arch} ({network} network, {c.embedding_dim}-d) to {out}")


def _deploy(source: str, out: str, fmt: str, as_json: bool) -> None:
    import msfkit
    from msfkit.models.deploy import export_deployable
    from msfkit.models.errors import MsfkitError

    if Path(source).is_file() or (Path(source) / "checkpoint.pt").is_file():
        raise MsfkitError(f"{source}: a checkpoint; make it a model folder first: msfkit export {source} DIR")
    path, sidecar = export_deployable(msfkit.load(source), out, fmt)
    if as_json:
        echo_json({"out": str(path), "format": fmt, "sidecar": str(sidecar)})
    else:
        click.echo(f"{fmt} -> {path} (preprocessing in {sidecar})")
