"""`msfkit models info MODEL`: what a model folder or Hub id holds."""

from __future__ import annotations

import click

from msfkit.cli.common import echo_json, json_option


@click.group("models", context_settings={"help_option_names": ["-h", "--help"]})
def models() -> None:
    """Inspect model folders and Hub models."""


@models.command("info")
@click.argument("model", envvar="MSFKIT_MODEL")
@json_option
def info(model: str, as_json: bool) -> None:
    """Show the architecture, embedding size, preprocessing and provenance of MODEL.

    MODEL is a model folder or a Hub id org/name[@revision].
    """
    from msfkit.models.catalog import model_info

    record = model_info(model)  # config and weights file only: no torch, well under a second
    if as_json:
        echo_json(record)
        return
    r = record
    rows = [
        ("model", model + (f" @ {r['revision']}" if r["revision"] else "")),
        ("architecture", f"{r['arch']} ({r['stem']} stem), {r['parameters'] / 1e6:.1f}M parameters"),
        ("embedding", f"{r['embedding_dim']}-d, from the {r['network']} network"),
        ("preprocessing", f"resize {r['resize']} {r['interpolation']} -> crop {r['image_size']}"),
        ("fingerprint", r["fingerprint"]),
    ]
    rows += [(f"  {k}", str(v)) for k, v in sorted(r["provenance"].items())]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")


@models.command("list")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False))
@json_option
def list_models(folders: tuple[str, ...], as_json: bool) -> None:
    """The msfkit encoders at hand: those in the local Hugging Face cache, and FOLDERS.

    Each with its architecture, embedding size, how it was made and the evaluation results its
    model card holds (`msfkit eval ... --card MODEL`). Reads no weights: quick, no torch.
    """
    from msfkit.models.catalog import cached_models, describe

    records = cached_models()
    for folder in folders:
        record = describe(folder)
        if record is None:
            raise click.ClickException(f"{folder}: not an msfkit model folder (no msfkit config.json)")
        records.append(record)
    if as_json:
        echo_json({"models": records})
        return
    if not records:
        click.echo("no msfkit models in the Hugging Face cache; name model folders to list them")
        return
    for r in records:
        made = ", ".join(f"{k} {r[k]}" for k in ("method", "k", "epochs", "data") if r.get(k) is not None)
        best = max(r["results"], key=lambda x: x["top1"], default=None)
        score = f"; best {best['protocol']} top-1 {best['top1']:.2f}" if best else ""
        what = f"{r['arch']} ({r['stem']} stem), {r['dim']}-d, {r['image_size']} px"
        click.echo(f"{r['model']}: {what}; {made}{score}")


@models.command("init")
@click.argument("arch", type=click.Choice(["resnet18", "resnet34", "resnet50", "resnet101"]))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--stem", default="imagenet", show_default=True, help="imagenet, or cifar for 32-64 px images.")
@click.option("--image-size", type=click.IntRange(8, 4096), default=224, show_default=True)
@click.option(
    "--resize",
    type=click.IntRange(8, 4096),
    help="Shorter side before the crop [a trained model's: the size up to 64 px, else 8/7 of it].",
)
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), help="A torchvision state dict.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random initialisation.")
@click.option("--force", is_flag=True, help="Replace OUT if it is a model folder.")
@json_option
def init(arch, out, stem, image_size, resize, weights, seed, force, as_json) -> None:
    """Write a baseline model folder OUT: ARCH randomly initialised (or from torchvision --weights).

    The baseline every evaluation should be compared with: a trained encoder that does not beat
    its random-init twin on `msfkit eval` has learned nothing.

    \b
      msfkit models init resnet18 baseline --stem cifar --image-size 32
      msfkit models init resnet50 tv-r50 --weights resnet50-11ad3fa6.pth
    """
    from msfkit.models.baseline import init_model_folder
    from msfkit.outputs import MODEL, check_output

    check_output(out, force=force, kind=MODEL)
    path, fingerprint = init_model_folder(
        arch, out, stem=stem, image_size=image_size, resize=resize, weights=weights, seed=seed, force=force
    )
    if as_json:
        record = {"out": str(path), "arch": arch, "fingerprint": fingerprint, "seed": seed}
        echo_json({**record, "weights": weights})
    else:
        click.echo(f"{arch} ({'torchvision weights' if weights else f'random init, seed {seed}'}) -> {path}")
