"""MSF at small scale: ResNet18, Fashion-MNIST, 32 px; MSF w/s (k=5) vs BYOL-asym w/s (k=1) vs random init.

    .venv/bin/python bench/reproduce_small.py --out /tmp/msfkit-repro    # ~30 min on a 2-core CPU
    .venv/bin/python bench/reproduce_small.py --stem cifar --epochs 50 --minutes 0 --batch-size 256  # GPU

Every model is evaluated the same way on frozen, centre-crop features: k-NN with the MSF paper's
protocol (cosine, unweighted vote, k = 1 and 20) and the fast linear probe of `msfkit.eval.linear`
(the reference head on cached features, lr chosen on held-out TRAIN). The random-init ResNet18
is the baseline measured in the same run; the table shows each method's gain over it.

On this CPU the default is the ImageNet stem (1/16 of the cifar stem's compute at 32 px) and a
time box per training run (`--minutes`); the runs record how many steps they managed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def evaluate(encoder, train, val, workers: int, precision: str) -> dict:
    """k-NN (msf protocol, k = 1, 20) and fast-linear top-1 of a frozen encoder."""
    from msfkit.data.datasets import ArrayImageDataset
    from msfkit.eval.features import extract_features
    from msfkit.eval.knn import knn_accuracy
    from msfkit.eval.linear import evaluate_head, train_linear_fast

    kw = dict(batch_size=256, workers=workers, precision=precision)
    start = time.perf_counter()
    train_x, train_y = extract_features(encoder, ArrayImageDataset(*train), **kw)
    val_x, val_y = extract_features(encoder, ArrayImageDataset(*val), **kw)
    knn = knn_accuracy(train_x, train_y, val_x, val_y, ks=(1, 20), protocol="msf")
    head = train_linear_fast(train_x, train_y)
    linear, _, _ = evaluate_head(head, val_x, val_y)
    return {
        "knn1": knn["top1"][1],
        "knn20": knn["top1"][20],
        "linear": linear,
        "linear_lr": head.info["recipe"]["lr"],
        "eval_s": time.perf_counter() - start,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/msfkit-repro", help="run folders and results.json")
    ap.add_argument("--stem", default="imagenet", choices=["imagenet", "cifar"])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=11.0, help="time box per training run (0 = none)")
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images (0 = all 60,000)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--bank-size", type=int, default=16_384)
    ap.add_argument("--knn-train", type=int, default=0, help="train images the evaluation embeds (0 = all)")
    ap.add_argument("--val", type=int, default=0, help="test images evaluated (0 = all 10,000)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    args = ap.parse_args()

    from msfkit.data.datasets import load_fashion_mnist
    from msfkit.models import Encoder, EncoderConfig
    from msfkit.training.config import load_config
    from msfkit.training.loop import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # the evaluation's data worker needs a core too (training sets its own threads the same way)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), len(os.sched_getaffinity(0)) - args.workers)))
    train_set, test_set = load_fashion_mnist("train"), load_fashion_mnist("test")
    knn_train = tuple(a[: args.knn_train or None] for a in train_set)
    val = tuple(a[: args.val or None] for a in test_set)
    print(
        f"Fashion-MNIST, ResNet18 ({args.stem} stem) 32 px; "
        f"eval on {len(knn_train[0])} train / {len(val[0])} test images"
    )
    results: dict[str, dict] = {}

    def record(name: str, row: dict) -> None:
        results[name] = row
        (out / "results.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
        print(f"{name}: {json.dumps(row)}", flush=True)

    torch.manual_seed(0)
    random_init = Encoder(EncoderConfig(arch="resnet18", stem=args.stem, image_size=32, resize=32))
    record("random init", {**evaluate(random_init, knn_train, val, args.workers, args.precision)})

    for name, k in (("MSF w/s (k=5)", 5), ("BYOL-asym w/s (k=1)", 1)):
        run = out / f"k{k}"
        overrides = [
            f"out={run}", f"stem={args.stem}", f"k={k}", f"epochs={args.epochs}", f"limit={args.limit}",
            f"max_minutes={args.minutes}", f"batch_size={args.batch_size}", f"bank_size={args.bank_size}",
            f"workers={args.workers}", f"precision={args.precision}", "knn_every=0",
        ]  # fmt: skip
        cfg = load_config("fashion-mnist", overrides=overrides)
        start = time.perf_counter()
        model_dir = train(cfg, progress=False)
        train_s = time.perf_counter() - start
        encoder = Encoder.from_pretrained(model_dir)
        prov = encoder.config.provenance
        row = evaluate(encoder, knn_train, val, args.workers, args.precision)
        row.update(steps=prov["steps"], epochs_trained=prov["epochs_trained"], train_s=train_s)
        row["images_per_s"] = prov["steps"] * args.batch_size / train_s
        record(name, row)

    base = results["random init"]
    print()
    print("| model | steps (epochs) | train min | 1-NN | 20-NN | fast linear | 20-NN vs random |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        trained = f"{r['steps']} ({r['epochs_trained']:.2f})" if "steps" in r else "-"
        minutes = f"{r['train_s'] / 60:.1f}" if "train_s" in r else "-"
        gain = r["knn20"] - base["knn20"]
        print(
            f"| {name} | {trained} | {minutes} | {r['knn1']:.2f} | {r['knn20']:.2f} | {r['linear']:.2f} "
            f"| {gain:+.2f} |"
        )


if __name__ == "__main__":
    main()
