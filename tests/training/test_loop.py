"""`msfkit train` end to end on real photos: a model folder that msfkit.load reads; NaN stops cleanly."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import msfkit
from msfkit.cli.main import cli
from msfkit.training.checkpoint import load_checkpoint

TINY = [
    "arch=resnet18",
    "stem=cifar",
    "image_size=32",
    "batch_size=4",
    "k=2",
    "bank_size=6",
    "workers=0",
    "threads=1",
]


@pytest.mark.slow
def test_a_few_steps_on_real_photos_give_a_model_folder_that_msfkit_loads(tmp_path, photos_dir, photo_paths):
    run = tmp_path / "run"
    args = ["train", *TINY, f"data={photos_dir}", f"out={run}", "epochs=1", "knn_every=0", "-q", "--json"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"run": str(run), "model": str(run / "model"), "method": "msf", "k": 2}

    enc = msfkit.load(str(run / "model"))
    prov = enc.config.provenance
    assert (prov["method"], prov["k"], prov["bank_size"], prov["augmentation"]) == (
        "msf",
        2,
        6,
        "weak/strong",
    )
    assert (prov["epochs"], prov["steps"], prov["data"]) == (1, 2, str(photos_dir))  # 8 photos / batch 4
    vectors = enc.embed([Image.open(p) for p in photo_paths[:3]])
    assert vectors.shape == (3, 512) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # the exported backbone is the ONLINE one of the checkpoint
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert torch.equal(enc.backbone.conv1.weight, ckpt["model"]["online.backbone.conv1.weight"])

    # `msfkit export RUN OUT` gives the same folder; `--network target` the EMA backbone
    r = CliRunner().invoke(cli, ["export", str(run), str(tmp_path / "exported")])
    assert r.exit_code == 0, r.output
    assert msfkit.load(str(tmp_path / "exported")).fingerprint == enc.fingerprint
    r = CliRunner().invoke(
        cli, ["export", str(run / "checkpoint.pt"), str(tmp_path / "t"), "--network", "target"]
    )
    assert r.exit_code == 0, r.output
    target = msfkit.load(str(tmp_path / "t"))
    assert target.config.network == "target"
    assert torch.equal(target.backbone.conv1.weight, ckpt["model"]["target.backbone.conv1.weight"])

    r = CliRunner().invoke(cli, ["train", *TINY, f"data={photos_dir}", f"out={run}"])
    assert r.exit_code == 1 and "already holds a run: pass --resume" in r.output


@pytest.mark.slow
def test_k1_run_is_recorded_as_byol_asym(tmp_path, photos_dir):
    run = tmp_path / "run"
    args = ["train", *TINY, "k=1", "max_steps=1", f"data={photos_dir}", f"out={run}", "knn_every=0", "-q"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert msfkit.load(str(run / "model")).config.provenance["method"] == "byol-asym"


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, photos_dir):
    run = tmp_path / "run"
    # lr 1e20 leaves finite but enormous weights after step 1; BatchNorm overflows at step 2
    args = [
        "train",
        *TINY,
        "lr=1e20",
        "save_every_steps=1",
        f"data={photos_dir}",
        f"out={run}",
        "knn_every=0",
        "-q",
    ]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["step"] == 1
    assert r.output == (
        "Error: loss is nan at step 2: training stopped; the last good checkpoint is "
        f"{run / 'checkpoint.pt'} (step 1); lower lr, then --resume\n"
    )
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not (run / "model").exists()


@pytest.mark.slow
def test_knn_monitor_scores_the_online_backbone_on_the_val_set(tmp_path):
    from msfkit.data.datasets import ArrayImageDataset, load_fashion_mnist
    from msfkit.eval.features import extract_features
    from msfkit.eval.knn import knn_accuracy

    run = tmp_path / "run"
    monitor = [
        "val_data=fashion-mnist:test",
        "knn_every=1",
        "knn_k=3",
        "knn_train_limit=40",
        "knn_val_limit=20",
    ]
    args = ["train", *TINY, "data=fashion-mnist", "limit=8", "epochs=1", f"out={run}", *monitor, "-q"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    enc = msfkit.load(str(run / "model"))
    knn = enc.config.provenance["knn_monitor"]
    assert (knn["k"], knn["step"], knn["train_images"], knn["val_images"]) == (3, 2, 40, 20)

    # the same number, computed here from the exported backbone on the same images
    (xtr, ytr), (xte, yte) = load_fashion_mnist("train"), load_fashion_mnist("test")
    train = extract_features(enc, ArrayImageDataset(xtr[:40], ytr[:40]))
    val = extract_features(enc, ArrayImageDataset(xte[:20], yte[:20]))
    expected = knn_accuracy(*train, *val, ks=(3,), protocol="msf")["top1"][3]
    assert knn["top1"] == round(expected, 2)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[-1].startswith("2,1,") and rows[-1].endswith(f",{expected}")


@pytest.mark.slow
def test_the_monitor_scores_random_init_at_step_0_then_every_n_steps_against_training_minutes(tmp_path):
    from msfkit.data.datasets import ArrayImageDataset, load_fashion_mnist
    from msfkit.eval.features import extract_features
    from msfkit.eval.knn import knn_accuracy
    from msfkit.models import Encoder, EncoderConfig

    run = tmp_path / "run"
    monitor = ["val_data=fashion-mnist:test", "knn_k=3", "knn_train_limit=40", "knn_val_limit=20"]
    every = ["knn_at_start=true", "knn_every=1", "knn_every_steps=1", "log_every=1"]
    args = ["train", *TINY, "stem=cifar-s2", "data=fashion-mnist", "limit=12", "epochs=1", f"out={run}"]
    r = CliRunner().invoke(cli, [*args, *monitor, *every, "-q"])
    assert r.exit_code == 0, r.output
    with (run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    knn_rows = [(int(r["step"]), float(r["minutes"])) for r in rows if r["knn_top1"]]
    assert [s for s, _ in knn_rows] == [0, 1, 2, 3]  # step 0, every step, the end once
    assert knn_rows[0][1] < 0.05 and all(a[1] <= b[1] for a, b in zip(knn_rows, knn_rows[1:], strict=False))

    # step 0 is the random-init network of the run's seed: the same number from a fresh encoder
    torch.manual_seed(0)
    fresh = Encoder(EncoderConfig(arch="resnet18", stem="cifar-s2", image_size=32, resize=32))
    (xtr, ytr), (xte, yte) = load_fashion_mnist("train"), load_fashion_mnist("test")
    train = extract_features(fresh, ArrayImageDataset(xtr[:40], ytr[:40]))
    val = extract_features(fresh, ArrayImageDataset(xte[:20], yte[:20]))
    expected = knn_accuracy(*train, *val, ks=(3,), protocol="msf")["top1"][3]
    knn = msfkit.load(str(run / "model")).config.provenance["knn_monitor"]
    assert knn["random_init_top1"] == round(expected, 2) and knn["step"] == 3
    assert float(rows[0]["knn_top1"]) == expected


@pytest.mark.slow
def test_the_knn_monitor_only_observes(tmp_path):
    """The monitor scores the online backbone and leaves training alone: a run scored at every step
    and one never scored end with the same weights, target, optimizer state and bank (views and order
    come from generators seeded by the run, not from the global one the monitor's loaders may draw).
    So the monitor's cadence is not part of a schedule (bench/reproduce_small.py's SCHEDULE)."""
    common = ["train", *TINY, "stem=cifar-s2", "data=fashion-mnist", "limit=12", "epochs=2", "-q"]
    monitor = ["val_data=fashion-mnist:test", "knn_k=3", "knn_train_limit=40", "knn_val_limit=20"]
    runs = {
        "scored": [*monitor, "knn_at_start=true", "knn_every=1", "knn_every_steps=1"],
        "unscored": ["knn_every=0", "knn_at_start=false"],
    }
    for name, extra in runs.items():
        r = CliRunner().invoke(cli, [*common, *extra, f"out={tmp_path / name}"])
        assert r.exit_code == 0, r.output
    with (tmp_path / "scored" / "metrics.csv").open(newline="") as f:
        assert sum(1 for row in csv.DictReader(f) if row["knn_top1"]) >= 6  # it did score, often
    a, b = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in runs)
    assert a["step"] == b["step"] == 6
    for key in a["model"]:  # online, predictor, target, bank
        assert torch.equal(a["model"][key], b["model"][key]), key
    for i, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
