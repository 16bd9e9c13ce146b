"""Curation against planted truth (issue 23 item 8): leaks between splits, outliers, label issues and
subsets on Fashion-MNIST with test images copied into train, foreign images planted and labels
flipped; with --timing, the time and memory of each command.

    .venv/bin/python bench/curate.py random:resnet18@32                 # 3,000 images, 500 in TEST
    .venv/bin/python bench/curate.py pixels                             # the raw pixels as vectors
    .venv/bin/python bench/curate.py MODEL_DIR --images 60000 --timing  # 10,000 in TEST

The collection: --images Fashion-MNIST train images (the same number per class), written as
CLASS/NNNNN.png; a --flip share of them moved into another class's folder, chosen at random (a label
mistake as a folder data set has it); --foreign images planted in random class folders, grey and
28 px like the clothes, an equal share of each of --foreign-kinds (the issue's three: photos, from
data/photos and then scikit-image's bundled images; digits, scikit-learn's bundled 8 px ones scaled
up; uniform noise), each file named by its kind; and a --leak share of TEST (--test Fashion-MNIST
*test* images, by default --images / 6, a folder of its own) copied into their class folders, each
copy re-encoded, cropped or resized (bench/curate_leaks.py says how). Both are embedded with the
model's own preprocessing, the collection into an exact (flat) index, TEST into a store of its own.
Then:
- leaks: precision and recall of the TEST images `msfkit.find_leaks(TRAIN, TEST)` lists (what
  `msfkit dedup TRAIN --against TEST` runs) at --threshold (by default dedup's calibrated one),
  against the copied ones, and recall per transformation;
- outliers: precision@F of the F most foreign images (F = the number planted; recall@F is the same),
  with each --score, and how many of each kind were found;
- label issues: precision and recall of the images listed against the flipped ones (foreign images,
  whose label means nothing, left out of both), of the whole list, then of the list read from its
  top (it is ranked): at the cut where recall first reaches 0.7 and at the best F1
  (bench/curate_scores.py);
- select, each strategy at each --budget share of the collection: the coverage radius, and the 20-NN
  accuracy (msf vote) on the clean images not chosen of a classifier built from the chosen clothes
  with their true labels (with fewer than 20 chosen, the vote is nearly the largest class's);
- and, to say how well the encoder separates the classes at all: the 20-NN accuracy of the clean
  images, half against the other half, true labels;
- with --timing: each command as a user runs it (the installed `msfkit`, on the built index, each in
  a process of its own: bench/command_cost.py), its wall seconds and peak resident memory: curate
  outliers, curate label-issues, curate select (each strategy at each --budget), dedup --groups centre
  and dedup --against TEST. Embedding is not part of any command's time.
With --work DIR the collection, its stores and its index are built in DIR and kept: a rerun with the
same arguments reuses them (the scores change, the embedding is not redone).
`random:ARCH@SIZE` is a random-init ARCH (seed 0, cifar stem at SIZE px) whose batch-norm statistics
are those of 512 images of the collection: with default statistics every image embeds almost alike.
`pixels` is no network: each image's 784 grey values, centred on the collection's mean image, written
as a store with msfkit's store writer (k-NN on Fashion-MNIST pixels is a known ~85 % baseline); with
no model to calibrate a threshold with or to embed TEST, it plants no leaks.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import msfkit  # noqa: E402
from bench.command_cost import measure, msfkit_command  # noqa: E402
from bench.curate_collection import foreign_kind, prepared, work_folder  # noqa: E402
from bench.curate_leaks import report_leaks  # noqa: E402
from bench.curate_scores import precision_recall, ranked_cuts  # noqa: E402
from msfkit.models.errors import MsfkitError  # noqa: E402


def knn_accuracy(index, train: np.ndarray, query: np.ndarray, true: np.ndarray) -> float:
    """20-NN accuracy (msf vote) on the `query` rows from the `train` rows, true labels."""
    from msfkit.eval.knn import knn_classify

    vectors = index.store.vectors
    predicted = knn_classify(vectors[train], true[train], vectors[query], ks=(20,))[20]
    return float((predicted == true[query]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a model folder, random:ARCH@SIZE, or pixels")
    ap.add_argument("--images", type=int, default=3000, help="Fashion-MNIST images (a multiple of 10)")
    ap.add_argument("--flip", type=float, default=0.05, help="share of their labels flipped")
    ap.add_argument("--foreign", type=int, default=30, help="foreign images planted")
    ap.add_argument(
        "--foreign-kinds", default="photos,digits,noise", help="an equal share of each: photos, digits, noise"
    )
    ap.add_argument(
        "--budget", default="0.01,0.05", help="shares of the collection selected, comma-separated"
    )
    ap.add_argument("-k", type=int, help="neighbours for outliers and label issues (default: each command's)")
    ap.add_argument("--test", type=int, help="Fashion-MNIST test images in TEST (default: --images / 6)")
    ap.add_argument("--leak", type=float, default=0.1, help="share of TEST copied, edited, into train")
    ap.add_argument("--threshold", default="auto", help="leaks: a cosine similarity, or auto (calibrated)")
    ap.add_argument("--timing", action="store_true", help="each command's wall seconds and peak memory")
    ap.add_argument("--photos", default=str(REPO / "data" / "photos"))
    ap.add_argument(
        "--work", help="build in this folder and keep it: a rerun with the same arguments reuses it"
    )
    args = ap.parse_args()
    args.test = min(10_000, args.test or args.images // 60 * 10)
    threshold = args.threshold if args.threshold == "auto" else float(args.threshold)
    rng = np.random.default_rng(0)

    with work_folder(args.work) as tmp:
        truth, foreign, planted = prepared(tmp, args, rng)
        index = msfkit.open_index(tmp / "index")
        paths = index.absolute_paths(range(len(index)))
        names = np.array([str(Path(p).relative_to(tmp / "images")) for p in paths])
        print(
            f"{len(index)} images ({len(foreign)} foreign, {len(truth)} flipped, {len(planted)} copied from "
            f"{args.test if planted else 0} in TEST), encoder {args.model}"
        )
        report(index, names, truth, foreign, args)
        if planted:
            roots = (tmp / "images", tmp / "test")
            threshold = report_leaks(tmp / "index", tmp / "test-store", roots, planted, threshold)
        if args.timing:
            report_costs(tmp, args, threshold if planted else None)


def report(index, names: np.ndarray, truth: dict[str, str], foreign: set[str], args) -> None:
    """Print each command's score against the planted truth."""
    clean = np.flatnonzero([n not in foreign for n in names])
    true = np.array([truth.get(n, n.split("/")[0]) for n in names])
    halves = np.random.default_rng(1).permutation(clean)
    accuracy = knn_accuracy(index, halves[: len(clean) // 2], halves[len(clean) // 2 :], true)
    print(f"encoder: 20-NN accuracy {accuracy:.3f} (clean images, half against half, true labels)")

    k = {} if args.k is None else {"k": args.k}
    shown = "" if args.k is None else f" (k={args.k})"
    for score in ("knn", "mahalanobis"):
        try:
            top = msfkit.outliers(index, top=len(foreign), score=score, **k)
        except MsfkitError as e:  # mahalanobis on fewer images than dimensions
            print(f"outliers{shown}, --score {score}: {e}")
            continue
        listed = {names[r] for r in top["row"]}
        found = len(listed & foreign) / len(foreign)
        kinds = Counter(foreign_kind(name) for name in listed & foreign)
        print(f"outliers{shown}, --score {score}: precision@{len(foreign)} {found:.3f} ({dict(kinds)} found)")

    issues = msfkit.label_issues(index, **k)
    ranked = [name for name in names[issues["row"]] if name not in foreign]
    print(f"label issues{shown}: the whole list: {precision_recall(set(ranked), set(truth))}")
    print(f"label issues{shown}, ranked: {ranked_cuts(ranked, set(truth))}")

    for share in map(float, args.budget.split(",")):
        budget = max(1, round(share * len(index)))
        for strategy in ("coverage", "centres", "random"):
            chosen = msfkit.select(index, budget, strategy=strategy)
            train = np.intersect1d(chosen.rows["row"].to_numpy(), clean)
            accuracy = knn_accuracy(index, train, np.setdiff1d(clean, train), true)
            radius = f"coverage radius {chosen.radius:.4f}"
            print(f"select {strategy} ({budget} images): {radius}, 20-NN accuracy {accuracy:.3f}")


def report_costs(tmp: Path, args, leak_threshold: float | None) -> None:
    """Print the wall seconds and peak memory of each command, each run alone on the built index;
    dedup at the leaks' threshold (0.95 without one), --against TEST only where TEST was embedded."""
    index, runs = str(tmp / "index"), []
    size = len(msfkit.open_index(index))
    k = [] if args.k is None else ["-k", str(args.k)]
    runs.append(["curate", "outliers", index, *k, "--top", str(args.foreign)])
    runs.append(["curate", "label-issues", index, *k])
    for share in map(float, args.budget.split(",")):
        for strategy in ("coverage", "centres", "random"):
            budget = str(max(1, round(share * size)))
            runs.append(["curate", "select", index, "--budget", budget, "--strategy", strategy])
    number = "0.95" if leak_threshold is None else str(float(leak_threshold))
    runs.append(["dedup", index, "--groups", "centre", "--threshold", number])
    if leak_threshold is not None:
        against = "auto" if args.threshold == "auto" else number  # as a pipeline's check runs it
        runs.append(["dedup", index, "--against", str(tmp / "test-store"), "--threshold", against])
    print(f"time and memory, each command in a process of its own on the index of {size} images:")
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    names = {index: "INDEX", str(tmp / "test-store"): "TEST"}
    for i, argv in enumerate(runs):
        shown = "msfkit " + " ".join(names.get(a, a) for a in argv)
        cost = measure([*msfkit_command(), *argv, "-o", str(out / f"{i}.txt")], out / f"{i}.log")
        if cost.exit_code:
            last = " ".join((out / f"{i}.log").read_text().strip().splitlines()[-1:])
            print(f"  {shown}: failed (exit {cost.exit_code}) {last}")
        else:
            print(f"  {shown:<66} {cost.seconds:8.1f} s {cost.peak_mib:8.0f} MiB peak")


if __name__ == "__main__":
    main()
