"""Which stem for 32 px on a CPU: k-NN gain over random init per CPU-minute, same recipe and budget.

    .venv/bin/python bench/stems.py --out /tmp/stems --minutes 2 \
        --only imagenet@32 cifar-s2@32 cifar-maxpool@32 cifar@24

Each candidate (stem, image size) trains MSF (k=5) with the `fashion-mnist-small` preset for a
step budget of about `--minutes` at its idle speed (SPEEDS), with the lr nearly constant (a
cosine over a long nominal horizon) so the budget, not the schedule, decides. Its CPU minutes are
then its steps at its own run's 90th-percentile speed (another job's load only lowers some log
windows). Its model and a random-init network of the same shape are scored with the k-NN
monitor's protocol (20-NN, msf, first 10,000 train / 2,000 test images).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

CANDIDATES = (("imagenet", 32), ("cifar-s2", 32), ("cifar-maxpool", 32), ("cifar", 24), ("cifar", 32))
# images/s of `msfkit train` with ONE thread (another engineer's test suite shared the 2 cores; two
# OpenMP threads then spin against it, 5-10x slower: bench/train_step.py), for the step budgets:
# about half the 2-thread idle speeds measured (imagenet 775, cifar-s2 330); cifar-maxpool as
# cifar-s2, cifar at 24 px by its share of the compute. A budget only has to be about right:
# each run's minutes are computed afterwards from its own 90th-percentile speed.
SPEEDS = {
    ("imagenet", 32): 400,
    ("cifar-s2", 32): 170,
    ("cifar-maxpool", 32): 170,
    ("cifar", 24): 110,
    ("cifar", 32): 70,
}


def knn20(encoder, train, val) -> float:
    from msfkit.data.datasets import ArrayImageDataset
    from msfkit.eval.features import extract_features
    from msfkit.eval.knn import knn_accuracy

    kw = dict(batch_size=256, precision="bf16")
    xtr, ytr = extract_features(encoder, ArrayImageDataset(*train), **kw)
    xte, yte = extract_features(encoder, ArrayImageDataset(*val), **kw)
    return knn_accuracy(xtr, ytr, xte, yte, ks=(20,), protocol="msf")["top1"][20]


def idle_speed(run: Path, skip: int = 1) -> float:
    """Images/s of a run as if the machine were its own: the 90th percentile of its log windows
    (another engineer's test suite shared the 2 cores in bursts, which only lowers some windows)."""
    import csv

    import numpy as np

    with (run / "metrics.csv").open(newline="") as f:
        speeds = [float(r["images_per_s"]) for r in csv.DictReader(f) if r["images_per_s"]]
    return float(np.percentile(speeds[skip:], 90))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/stems")
    ap.add_argument("--minutes", type=float, default=4.0, help="CPU budget per candidate at its SPEEDS speed")
    ap.add_argument("--only", nargs="*", default=None, help="stem@size, e.g. cifar@24")
    args = ap.parse_args()

    import torch

    from msfkit.data.datasets import load_fashion_mnist
    from msfkit.models import Encoder
    from msfkit.training.config import load_config
    from msfkit.training.export import encoder_config
    from msfkit.training.loop import train

    train_set, test_set = load_fashion_mnist("train"), load_fashion_mnist("test")
    sub_train = tuple(a[:10_000] for a in train_set)
    sub_val = tuple(a[:2_000] for a in test_set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    todo = [c for c in CANDIDATES if not args.only or f"{c[0]}@{c[1]}" in args.only]
    # the budget: the steps each candidate makes in `minutes` at its SPEEDS speed; then the runs can be as
    # slow as the shared machine makes them without changing what each candidate got
    for stem, size in todo:
        speed = SPEEDS[(stem, size)]
        budget = round(speed * 60 * args.minutes / 128)
        overrides = [
            f"out={out}/{stem}-{size}", f"stem={stem}", f"image_size={size}", f"max_steps={budget}",
            "epochs=100", "knn_every=0", "save_every=1000", "log_every=5", "threads=1",
        ]  # fmt: skip
        cfg = load_config("fashion-mnist-small", overrides=overrides)
        torch.manual_seed(0)
        base = knn20(Encoder(encoder_config(cfg)), sub_train, sub_val)
        start = time.perf_counter()
        model_dir = train(cfg, progress=False)
        minutes = (time.perf_counter() - start) / 60
        enc = Encoder.from_pretrained(model_dir)
        steps = enc.config.provenance["steps"]
        acc = knn20(enc, sub_train, sub_val)
        speed = idle_speed(Path(cfg.out))  # the run's own, better than the probe's
        cpu_minutes = steps * cfg.batch_size / speed / 60
        row = dict(stem=stem, size=size, steps=steps, minutes=cpu_minutes, images_per_s=speed, random=base)
        row["trained"], row["wall_minutes"] = acc, minutes
        row["gain"], row["load"] = acc - base, os.getloadavg()[1]  # 5-min load average at the end
        rows.append(row)
        (out / "stems.json").write_text(json.dumps(rows, indent=2))
        print(json.dumps(row), flush=True)
    print("\n| stem | px | steps | train min | images/s | random 20-NN | trained 20-NN | gain | gain/min |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['stem']} | {r['size']} | {r['steps']} | {r['minutes']:.1f} | {r['images_per_s']:.0f} "
            f"| {r['random']:.2f} | {r['trained']:.2f} | {r['gain']:+.2f} | {r['gain'] / r['minutes']:+.2f} |"
        )


if __name__ == "__main__":
    main()
