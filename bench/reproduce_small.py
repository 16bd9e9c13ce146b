"""MSF at small scale: ResNet18, Fashion-MNIST, 32 px; MSF w/s (k=5) vs BYOL-asym w/s (k=1) vs random
init vs raw pixels, with the small-image recipe (the `fashion-mnist-small` preset).

    .venv/bin/python bench/reproduce_small.py --out /tmp/repro --threads 1 --parallel   # 2-core CPU, ~35 min
    .venv/bin/python bench/reproduce_small.py --stem cifar --epochs 200 --minutes 0 --batch-size 256  # GPU
    .venv/bin/python bench/reproduce_small.py --out /tmp/repro --epochs 36 --minutes 0 --workers 0 --threads 2

Rerunning the same command continues: measured baselines and finished methods are kept from
OUT/results.json, and an unfinished training run resumes from its last checkpoint (train's exact
resume; the preset checkpoints every epoch, and `--save-every-steps` more often), so a long run can
be stopped (Ctrl-C, SIGTERM, kill) and continued later. A different schedule in the same OUT is
refused: use another OUT. Run folders live on the machine; `--record JSON` keeps a copy of
results.json elsewhere (the repository keeps `bench/reproduce_small_36ep.json`), written with OUT's
and read for the rows OUT lacks, so on a new machine finished runs stay finished (drawn from their
recorded curves) and only an unfinished one starts over.

A lever's proxy is the same script on fewer images and epochs with train config keys for every run,
in an OUT of its own (the baselines of the first proxy reused by the others with --baselines):

    .venv/bin/python bench/reproduce_small.py --out /tmp/lever-crop --limit 10000 --epochs 6 \
        --minutes 0 --workers 0 --threads 2 --only msf --set crop_scale=0.5

Every model is scored the same way on frozen, centre-crop features of the full 60,000 train and
10,000 test images (`msfkit.eval.features.extract_features`, the encoder's own preprocessing):
k-NN with the MSF paper's protocol (cosine, unweighted vote, k = 1 and 20) and the fast linear
probe (`msfkit eval --linear`'s: the reference head on the cached features, lr picked on 10% of
train; added to the rows of a results.json written before it). Raw pixels are the 28 x 28 images
as unit vectors, same protocol. During training the k-NN monitor (20-NN, first
10,000 train / 2,000 test images) draws the curve; random init and raw pixels are scored on the
same subsets for the flat lines of the plot (`--plot`, accuracy vs training minutes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import torch


def evaluate(encoder, train, val, workers: int, precision: str, linear: bool = True) -> dict:
    """k-NN (msf protocol, k = 1, 20) and, with `linear`, the fast linear probe of a frozen encoder."""
    from msfkit.data.datasets import ArrayImageDataset
    from msfkit.eval.features import extract_features

    kw = dict(batch_size=256, workers=workers, precision=precision)
    start = time.perf_counter()
    train_x, train_y = extract_features(encoder, ArrayImageDataset(*train), **kw)
    val_x, val_y = extract_features(encoder, ArrayImageDataset(*val), **kw)
    return {**knn(train_x, train_y, val_x, val_y, linear), "eval_s": time.perf_counter() - start}


def knn(train_x, train_y, val_x, val_y, linear: bool = False) -> dict:
    """20-NN and 1-NN top-1 %; with `linear`, also the fast linear probe's (`linear`: the reference
    head on these cached features, lr picked on 10% of train, as `msfkit eval --linear` runs it)."""
    from msfkit.eval.knn import knn_accuracy

    acc = knn_accuracy(train_x, train_y, val_x, val_y, ks=(1, 20), protocol="msf")["top1"]
    row = {"knn1": acc[1], "knn20": acc[20]}
    if linear:
        from msfkit.eval.linear import evaluate_head, train_linear_fast

        head = train_linear_fast(train_x, train_y, seed=0)
        row["linear"] = evaluate_head(head, val_x, val_y)[0]
        row["linear_lr"] = head.info["recipe"]["lr"]
    return row


def pixels(images) -> np.ndarray:
    x = images.reshape(len(images), -1).astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


METHODS = {5: "MSF w/s (k=5)", 1: "BYOL-asym w/s (k=1)"}  # k: the method's name in results.json


def run_name(k: int, seed: int) -> str:
    """A run's name in results.json and the plot: the method, and its seed unless 0."""
    return METHODS[k] + (f", seed {seed}" if seed else "")


def run_folder(k: int, seed: int) -> str:
    """A run's folder under --out: k5, k1, k5-seed1, ..."""
    return f"k{k}" + (f"-seed{seed}" if seed else "")


def curve(run: Path) -> list[tuple[float, float, float, float]]:
    """(training minutes, epochs, monitor 20-NN, unshared minutes) of a run's metrics.csv. Training
    minutes are the wall clock read off its loss rows at the same step (step 0 = minute 0), so that no
    monitor time is counted, but a paused or shared CPU is; unshared minutes are the steps at the
    run's own rate when it had the machine (`unshared_rate`)."""
    with (run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    logged = [(0, 0.0)] + [(int(r["step"]), float(r["minutes"])) for r in rows if not r["knn_top1"]]
    steps, minutes = zip(*sorted(logged), strict=True)
    scored = {int(r["step"]): float(r["knn_top1"]) for r in rows if r["knn_top1"]}  # one per step
    per_epoch, rate = steps_per_epoch(run), unshared_rate(steps, minutes)
    return [
        (float(np.interp(step, steps, minutes)), step / per_epoch, top1, step / rate)
        for step, top1 in sorted(scored.items())
    ]


def unshared_rate(steps, minutes) -> float:
    """Steps a minute when the run had the machine: the median rate of the intervals between
    consecutive logged steps that ran at least 80% as fast as the fastest (their 95th percentile). A
    pause, a shared CPU or a restart makes an interval slower; timer noise spreads the fast ones."""
    ds, dm = np.diff(np.asarray(steps, dtype=float)), np.diff(np.asarray(minutes, dtype=float))
    moved = (ds > 0) & (dm > 0)
    rates = ds[moved] / dm[moved]
    if not len(rates):
        return float("nan")
    return float(np.median(rates[rates >= 0.8 * np.percentile(rates, 95)]))


def steps_per_epoch(run: Path) -> int:
    from msfkit.training.checkpoint import CHECKPOINT_NAME, safe_torch_load

    return int(safe_torch_load(run / CHECKPOINT_NAME)["steps_per_epoch"])


def plot(results: dict, curves: dict, path: Path, title: str) -> None:
    """The monitor against epochs (left) and training minutes (right), the baselines as flat lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, x, label in (
        (axes[0], 1, "epochs"),
        (axes[1], 3, "training minutes at the run's unshared rate (pauses and monitor left out)"),
    ):
        for name, points in curves.items():
            xs, ys = [p[x] for p in points], [p[2] for p in points]
            line = ax.plot(xs, ys, marker="o", ms=2, label=f"{name}, monitor (10k/2k)")[0]
            if name in results:  # a finished run: its score on the full splits
                final = results[name]["knn20"]
                ax.plot(xs[-1:], [final], marker="*", ms=12, color=line.get_color(), ls="none",
                        label=f"{name}, final 60k/10k: {final:.2f}")  # fmt: skip
        for name, row in results.items():  # a finished run recorded without its curve: the score alone
            at = row.get("epochs_trained") if x == 1 else row.get("unshared_min")
            if "steps" in row and name not in curves and at:
                ax.plot([at], [row["knn20"]], marker="*", ms=12, ls="none",
                        label=f"{name}, final 60k/10k: {row['knn20']:.2f} (curve not kept)")  # fmt: skip
        for name, style in (("random init", "--"), ("raw pixels", ":")):
            sub = results[name]["knn20_subset"]
            full = results[name]["knn20"]
            ax.axhline(sub, ls=style, color="grey", label=f"{name} (10k/2k {sub:.2f}; 60k/10k {full:.2f})")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("20-NN top-1 % (msf protocol)")
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def measure_baselines(record, args, base_cfg, data) -> None:
    """Raw pixels and the random-init network (the runs' own seed), on the full splits and the subsets."""
    from msfkit.models import Encoder
    from msfkit.training.export import encoder_config

    train_set, test_set, sub_train, sub_val = data
    row = knn(pixels(train_set[0]), train_set[1], pixels(test_set[0]), test_set[1], linear=True)
    row["knn20_subset"] = knn(pixels(sub_train[0]), sub_train[1], pixels(sub_val[0]), sub_val[1])["knn20"]
    record("raw pixels", row)
    torch.manual_seed(0)
    random_init = Encoder(encoder_config(base_cfg))
    row = evaluate(random_init, train_set, test_set, args.workers, args.precision)
    subset = evaluate(random_init, sub_train, sub_val, args.workers, args.precision, linear=False)
    row["knn20_subset"] = subset["knn20"]
    record("random init", row)


def add_linear(record, results: dict, args, base_cfg, data) -> None:
    """The fast linear probe for rows an earlier version of this script scored by k-NN alone: the same
    features again (raw pixels, the seeded random init, a finished run's model folder)."""
    from msfkit.models import Encoder
    from msfkit.training.export import encoder_config

    train_set, test_set = data
    for name, row in list(results.items()):
        if "linear" in row:
            continue
        print(f"{name}: the fast linear probe, added to its k-NN scores", flush=True)
        if name == "raw pixels":
            scored = knn(pixels(train_set[0]), train_set[1], pixels(test_set[0]), test_set[1], linear=True)
        else:
            if name == "random init":
                torch.manual_seed(0)
                encoder = Encoder(encoder_config(base_cfg))
            else:
                encoder = Encoder.from_pretrained(row.get("model") or Path(row["run"]) / "model")
            scored = evaluate(encoder, train_set, test_set, args.workers, args.precision)
        if abs(scored["knn20"] - row["knn20"]) > 0.05:  # bf16 on another CPU may move it a little
            print(f"{name}: 20-NN {scored['knn20']:.2f} now, {row['knn20']:.2f} recorded (kept)", flush=True)
        record(name, {**row, "linear": scored["linear"], "linear_lr": scored["linear_lr"]})


def train_run(preset: str, overrides: list[str]) -> tuple[Path, float]:
    """(model folder, wall seconds) of one training run, continued from its checkpoint if it has one."""
    from msfkit.training.checkpoint import CHECKPOINT_NAME
    from msfkit.training.config import load_config
    from msfkit.training.loop import train

    cfg = load_config(preset, overrides=overrides)
    resume = (Path(cfg.out) / CHECKPOINT_NAME).exists()
    if resume:
        print(f"continuing {cfg.out} from its checkpoint", flush=True)
    start = time.perf_counter()
    model_dir = train(cfg, resume=resume, progress=False)
    return model_dir, time.perf_counter() - start


# the arguments that change what a run computes: a rerun into the same OUT must repeat them. Not the
# monitor's cadence (--knn-every-steps/-epochs): it only observes (tests/training/test_loop.py), so a run may
# be scored less often to leave its time to training; its curve then has fewer points
SCHEDULE = ("preset", "stem", "epochs", "batch_size", "precision", "limit", "set")


def finished_curves(results: dict, recorded: dict) -> dict[str, list]:
    """The curves of the finished runs: read off each run's folder where it is still there, else the
    curve recorded in a results.json when the run finished (`recorded`: a copy kept in the repository
    outlives the machine, and the run folders, that made it); none for a row recorded without one."""
    curves = {}
    for name, row in results.items():
        if "steps" not in row:
            continue
        if (Path(row.get("run", "")) / "metrics.csv").is_file():
            curves[name] = curve(Path(row["run"]))
        elif name in recorded:
            curves[name] = [tuple(point) for point in recorded[name]]
    return curves


def read_results(path: Path, args=None) -> tuple[dict, dict, dict]:
    """(results, recorded curves, the whole document) of a results.json, empty if there is none; with
    `args`, one of another schedule is refused."""
    if not path.exists():
        return {}, {}, {}
    doc = json.loads(path.read_text())
    recorded = {"set": [], **doc["args"]}  # a results.json from before --set was added
    differ = args and ", ".join(
        "--" + k.replace("_", "-") for k in SCHEDULE if recorded.get(k) != getattr(args, k)
    )
    if differ:
        raise SystemExit(f"{path} holds a run with other {differ}: rerun with the same, or another --out")
    return doc["results"], doc.get("curves", {}), doc


def earlier_results(out: Path, record: str, args=None) -> tuple[dict, dict, dict]:
    """What earlier runs of the same schedule recorded in OUT/results.json and, with --record, in its
    kept copy, which fills in the rows OUT lacks (a new machine: OUT empty, or from an older copy)."""
    results, curves, doc = read_results(out / "results.json", args)
    if record:
        kept, kept_curves, kept_doc = read_results(Path(record), args)
        results, curves, doc = {**kept, **results}, {**kept_curves, **curves}, doc or kept_doc
    return results, curves, doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/msfkit-repro", help="run folders and results.json")
    ap.add_argument("--preset", default="fashion-mnist-small")
    ap.add_argument("--stem", default="", help="override the preset's stem")
    ap.add_argument("--epochs", type=int, default=4, help="the lr and EMA schedules' length")
    ap.add_argument("--minutes", type=float, default=36.0, help="safety time box per training run (0 = none)")
    ap.add_argument("--knn-every-steps", type=int, default=250, help="k-NN monitor interval (the curve)")
    ap.add_argument("--knn-every-epochs", type=int, default=1, help="and at every N-th epoch's end")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = the cores the workers leave)")
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--plot", default="bench/reproduce_small.png")
    ap.add_argument("--only", nargs="*", default=None, help="methods to train: msf byol-asym")
    ap.add_argument("--parallel", action="store_true", help="train both methods at once (use --threads 1)")
    ap.add_argument("--baselines", default="", help="results.json of an earlier run: reuse its two baselines")
    ap.add_argument("--replot", action="store_true", help="redraw the plot and table from OUT/results.json")
    ap.add_argument(
        "--record", default="", metavar="JSON", help="a copy of results.json kept off the machine"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="a run of each method per seed")
    ap.add_argument("--limit", type=int, default=0, help="train and score on the first N images (0 = all)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop each run at this step, to continue later")
    ap.add_argument("--save-every-steps", type=int, default=0, help="also checkpoint every N steps")
    ap.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="train config keys for every run (a proxy)"
    )
    args = ap.parse_args()
    if args.replot:
        return replot(Path(args.out), Path(args.plot), args.record)

    from msfkit.data.datasets import load_fashion_mnist
    from msfkit.models import Encoder
    from msfkit.training.config import load_config

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, recorded, _ = earlier_results(out, args.record, args)  # first: another schedule is refused
    free = max(1, min(torch.get_num_threads(), len(os.sched_getaffinity(0)) - args.workers))
    torch.set_num_threads(args.threads or free)
    train_set, test_set = load_fashion_mnist("train"), load_fashion_mnist("test")
    if args.limit:  # a small run (the tests): the same protocol on the first images
        train_set, test_set = (tuple(a[: args.limit] for a in split) for split in (train_set, test_set))
    sub_n = min(10_000, len(train_set[0])), min(2_000, len(test_set[0]))
    sub_train, sub_val = tuple(a[: sub_n[0]] for a in train_set), tuple(a[: sub_n[1]] for a in test_set)
    common = [
        f"stem={args.stem}" if args.stem else "", f"epochs={args.epochs}", f"max_minutes={args.minutes}",
        f"batch_size={args.batch_size}", f"workers={args.workers}", f"precision={args.precision}",
        f"knn_every_steps={args.knn_every_steps}", f"knn_every={args.knn_every_epochs}",
        f"knn_train_limit={sub_n[0]}", f"knn_val_limit={sub_n[1]}",
        f"limit={args.limit}", f"max_steps={args.max_steps}",
        f"threads={args.threads}", f"save_every_steps={args.save_every_steps}", *args.set,
    ]  # fmt: skip
    common = [c for c in common if c]
    base_cfg = load_config(args.preset, overrides=common)
    print(f"Fashion-MNIST, ResNet18 ({base_cfg.stem} stem) {base_cfg.image_size} px; {base_cfg}", flush=True)
    curves = finished_curves(results, recorded)

    def record(name: str, row: dict) -> None:
        results[name] = row
        doc = json.dumps(
            {"args": vars(args), "config": base_cfg.to_dict(), "results": results, "curves": curves}, indent=2
        )
        for path in [out / "results.json"] + ([Path(args.record)] if args.record else []):
            path.write_text(doc + "\n")
        print(f"{name}: {json.dumps(row)}", flush=True)

    if {"raw pixels", "random init"} <= results.keys():
        print("baselines: kept from an earlier run (this --out or --record)", flush=True)
    elif args.baselines:  # the same protocol and data: no need to measure them again
        earlier = json.loads(Path(args.baselines).read_text())["results"]
        for name in ("raw pixels", "random init"):
            record(name, {**earlier[name], "from": args.baselines})
    else:
        measure_baselines(record, args, base_cfg, (train_set, test_set, sub_train, sub_val))
    add_linear(record, results, args, base_cfg, (train_set, test_set))

    methods = [
        (run_name(k, seed), k, seed)
        for seed in args.seeds
        for k in METHODS
        if not args.only or ("msf" if k > 1 else "byol-asym") in args.only
    ]
    finished = [m for m in methods if "steps" in results.get(m[0], {})]
    for name, *_ in finished:
        print(f"{name}: finished in an earlier run, kept", flush=True)
    methods = [m for m in methods if m not in finished]
    runs = {
        name: [*common, f"out={out / run_folder(k, seed)}", f"k={k}", f"seed={seed}"]
        for name, k, seed in methods
    }
    if args.parallel and runs:  # both methods at once, one process each: another job's load hits both alike
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(len(runs), mp_context=get_context("spawn")) as pool:
            done = dict(zip(runs, pool.map(train_run, [args.preset] * len(runs), runs.values()), strict=True))
    for name, _k, _seed in methods:
        cfg = load_config(args.preset, overrides=runs[name])
        run = Path(cfg.out)
        model_dir, wall_s = done[name] if args.parallel else train_run(args.preset, runs[name])
        encoder = Encoder.from_pretrained(model_dir)
        prov = encoder.config.provenance
        if prov["epochs_trained"] < args.epochs - 1e-9:  # a time box or --max-steps cut it short
            print(f"{name}: stopped at step {prov['steps']} ({prov['epochs_trained']:.2f} of {args.epochs}"
                  " epochs); run the same command again to continue", flush=True)  # fmt: skip
            continue
        row = evaluate(encoder, train_set, test_set, args.workers, args.precision)
        curves[name] = curve(run)
        minutes = curves[name][-1][0] if curves[name] else wall_s / 60
        row.update(
            steps=prov["steps"],
            epochs_trained=prov["epochs_trained"],
            train_min=minutes,
            wall_s=wall_s,
            run=str(run),
            model=str(model_dir),
        )
        row["images_per_s"] = prov["steps"] * args.batch_size / (60 * minutes)
        record(name, row)
        plot(
            results,
            curves,
            Path(args.plot),
            f"Fashion-MNIST, ResNet18 {cfg.stem} stem, {cfg.image_size} px, batch {cfg.batch_size}, "
            f"{args.epochs}-epoch schedule",
        )

    table(results)


def replot(out: Path, path: Path, record: str = "") -> None:
    results, recorded, doc = earlier_results(out, record)
    if not doc:
        raise SystemExit(f"nothing to draw: no {out / 'results.json'}" + (f", no {record}" if record else ""))
    cfg, args = doc["config"], doc["args"]
    from msfkit.training.checkpoint import CHECKPOINT_NAME

    curves = finished_curves(results, recorded)
    for seed in args["seeds"]:  # and the runs still going (or stopped, to be continued): no final score
        for k in METHODS:
            run, name = out / run_folder(k, seed), run_name(k, seed)
            if name not in curves and (run / "metrics.csv").is_file() and (run / CHECKPOINT_NAME).is_file():
                curves[f"{name}, in progress"] = curve(run)
    title = f"Fashion-MNIST, ResNet18 {cfg['stem']} stem, {cfg['image_size']} px, batch {cfg['batch_size']}, "
    plot(results, curves, path, title + f"{args['epochs']}-epoch schedule")
    print(json.dumps(curves))
    table(results)


def table(results: dict) -> None:
    rand = results["random init"]
    print()
    print("| model | steps (epochs) | train min | images/s | 1-NN | 20-NN | fast linear | 20-NN vs random |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        trained = f"{r['steps']} ({r['epochs_trained']:.2f})" if "steps" in r else "-"
        minutes = f"{r['train_min']:.1f}" if "train_min" in r else "-"
        speed = f"{r['images_per_s']:.0f}" if "images_per_s" in r else "-"
        gain = r["knn20"] - rand["knn20"]
        linear = f"{r['linear']:.2f}" if "linear" in r else "-"
        print(
            f"| {name} | {trained} | {minutes} | {speed} | {r['knn1']:.2f} | {r['knn20']:.2f} | {linear} "
            f"| {gain:+.2f} |"
        )
    for method in METHODS.values():  # a method with several finished seeds: their mean (and range)
        rows = [r for name, r in results.items() if "steps" in r and name.split(", seed")[0] == method]
        if len(rows) > 1:
            cells = []
            for key in ("knn1", "knn20", "linear"):
                got = [r[key] for r in rows if key in r]
                cells.append(f"{np.mean(got):.2f} ({min(got):.2f}-{max(got):.2f})" if got else "-")
            gain = np.mean([r["knn20"] for r in rows]) - rand["knn20"]
            print(f"| {method}, mean of {len(rows)} seeds | - | - | - | {' | '.join(cells)} | {gain:+.2f} |")


if __name__ == "__main__":
    main()
