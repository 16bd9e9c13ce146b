"""Benchmark `msfkit eval`: the fast linear preset against the paper's recipe, and k-NN speed.

    .venv/bin/python bench/eval.py                         # random-init encoder
    .venv/bin/python bench/eval.py --trained MODEL_DIR     # also a trained one

1. Linear, on Fashion-MNIST with a ResNet18 (cifar stem, 32 px): `msf` (the backbone runs on
   RandomResizedCrop + flip views every step, the full 40-epoch schedule) against `fast` (the
   same head and schedule on cached centre-crop features, lr swept on a split of train). Both
   start from the same labelled train subset (`--n-train`, per class, deterministic) and are
   scored on the same `--n-val` test images. Each time counts what the preset needs from raw
   images: fast = centre-crop train features + training; msf = centre-crop train features (the
   standardisation statistics) + training. The val features are shared and not counted.
2. k-NN: 20-NN (msf vote) of 10,000 val against 60,000 train features, D = 512 and 2048, with
   msfkit's default (bf16 shortlist, exact float64 re-ranking) against the float32 search, same
   answers checked. Features are a 10-class Gaussian mixture on the unit sphere (clustered, like
   real features; real 60,000-image features would cost minutes of backbone time here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from msfkit.data.datasets import ArrayImageDataset, load_fashion_mnist  # noqa: E402
from msfkit.eval.features import extract_features  # noqa: E402
from msfkit.eval.knn import knn_classify  # noqa: E402
from msfkit.eval.linear import (  # noqa: E402
    LinearRecipe,
    evaluate_head,
    sample_per_class,
    standardization,
    train_linear_fast,
    train_linear_msf,
    train_transform,
)
from msfkit.models import Encoder, EncoderConfig  # noqa: E402


def linear_comparison(encoder, name: str, args) -> dict:
    xi, yi = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    picked = sample_per_class(yi, args.n_train / len(yi))
    xi, yi = xi[picked], yi[picked]
    xt, yt = xt[: args.n_val], yt[: args.n_val]
    kw = {"batch_size": 256, "precision": args.precision}
    val_x, val_y = extract_features(encoder, ArrayImageDataset(xt, yt), **kw)
    recipe = LinearRecipe(epochs=args.epochs)

    t0 = time.perf_counter()
    train_x, train_y = extract_features(encoder, ArrayImageDataset(xi, yi), **kw)
    t_feats = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = train_linear_fast(train_x, train_y, recipe=recipe)
    t_fast = t_feats + time.perf_counter() - t0
    fast_top1, fast_top5, _ = evaluate_head(fast, val_x, val_y)
    # The same recipe at the reference lr, no sweep: separates the lr choice from the augmentations.
    fixed = train_linear_fast(train_x, train_y, lrs=(recipe.lr,), recipe=recipe)
    fixed_top1 = evaluate_head(fixed, val_x, val_y)[0]

    t0 = time.perf_counter()
    mean, std = standardization(train_x)
    msf = train_linear_msf(
        encoder,
        ArrayImageDataset(xi, yi, train_transform(encoder.config)),
        mean,
        std,
        list(range(10)),
        recipe=recipe,
        precision=args.precision,
    )
    t_msf = t_feats + time.perf_counter() - t0
    msf_top1, msf_top5, _ = evaluate_head(msf, val_x, val_y)
    return {
        "encoder": name,
        "n_train": len(yi),
        "n_val": len(yt),
        "epochs": args.epochs,
        "msf_s": round(t_msf, 1),
        "fast_s": round(t_fast, 1),
        "speedup": round(t_msf / t_fast, 1),
        "msf_top1": round(msf_top1, 2),
        "fast_top1": round(fast_top1, 2),
        "top1_diff": round(fast_top1 - msf_top1, 2),
        "msf_top5": round(msf_top5, 2),
        "fast_top5": round(fast_top5, 2),
        "fast_lr": fast.info["recipe"]["lr"],
        "fast_lr0.01_top1": round(fixed_top1, 2),
        "sgd_steps": args.epochs * -(-len(yi) // recipe.batch_size),
    }


def clustered_features(n_train: int, n_val: int, dim: int, seed: int):
    """(train x, train y, val x, val y): 10 classes, each a unit centre plus isotropic noise, unit rows."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(10, dim, generator=gen), dim=1)
    out = []
    for n in (n_train, n_val):
        labels = torch.randint(0, 10, (n,), generator=gen)
        x = centres[labels] + 1.2 * torch.randn(n, dim, generator=gen) / dim**0.5
        out += [torch.nn.functional.normalize(x, dim=1).numpy(), labels.numpy()]
    return out


def knn_speed(dim: int, n_train: int, n_val: int) -> dict:
    tx, ty, vx, vy = clustered_features(n_train, n_val, dim, seed=dim)
    times, preds = {}, {}
    for precision in ("fp32", "auto"):
        t0 = time.perf_counter()
        preds[precision] = knn_classify(tx, ty, vx, ks=(20,), protocol="msf", precision=precision)[20]
        times[precision] = time.perf_counter() - t0
    return {
        "dim": dim,
        "n_train": n_train,
        "n_val": n_val,
        "fp32_s": round(times["fp32"], 2),
        "msfkit_s": round(times["auto"], 2),
        "speedup": round(times["fp32"] / times["auto"], 2),
        "same_answers": bool((preds["fp32"] == preds["auto"]).all()),
        "top1": round(float((preds["auto"] == vy).mean() * 100), 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trained", help="a trained model folder (32 px cifar-stem or any msfkit model)")
    p.add_argument("--n-train", type=int, default=1000, help="labelled train images (same count per class)")
    p.add_argument("--n-val", type=int, default=10000, help="test images scored")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16", help="backbone precision")
    p.add_argument("--skip-linear", action="store_true")
    p.add_argument("--skip-knn", action="store_true")
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    if not args.skip_knn:
        for dim in (512, 2048):
            print(json.dumps({"knn": knn_speed(dim, 60000, 10000)}), flush=True)
    if not args.skip_linear:
        encoders = [
            (
                "random-init resnet18 32px",
                Encoder(EncoderConfig("resnet18", "cifar", image_size=32, resize=32)),
            )
        ]
        if args.trained:
            encoders.append((f"trained {args.trained}", Encoder.from_pretrained(args.trained)))
        for name, enc in encoders:
            print(json.dumps({"linear": linear_comparison(enc.eval(), name, args)}), flush=True)


if __name__ == "__main__":
    main()
