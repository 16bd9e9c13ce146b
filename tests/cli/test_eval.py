"""`msfkit datasets export` and `msfkit eval` through click's runner: real Fashion-MNIST PNGs, a
tiny real model, JSON and table output, plots, the model card, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from msfkit.cli.main import cli
from msfkit.data.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "fm"
    result = run("datasets", "export", "fashion-mnist", out, "--per-class", "5", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["written"] == {"train": 50, "test": 50}
    return out


def test_export_writes_class_folders_of_the_real_images(exported):
    images, labels = load_fashion_mnist("test")
    assert sorted(p.name for p in (exported / "test").iterdir()) == sorted(FASHION_MNIST_CLASSES)
    first_bag = int(np.flatnonzero(labels == FASHION_MNIST_CLASSES.index("bag"))[0])
    png = exported / "test" / "bag" / f"{first_bag:05d}.png"
    np.testing.assert_array_equal(np.asarray(Image.open(png)), images[first_bag])
    assert len(list((exported / "train").glob("*/*.png"))) == 50


@pytest.mark.slow
def test_eval_json_knn_and_fast_linear(exported, tiny_model_dir, tmp_path):
    result = run(
        "eval", "-m", tiny_model_dir, "--train", exported / "train", "--val", exported / "test",
        "--knn", "--protocol", "msf", "--protocol", "dino", "-k", "1,5,20", "--linear", "--epochs", "5",
        "--head-out", tmp_path / "head", "--features-dir", tmp_path / "features", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    got = [(r["protocol"], r["k"]) for r in report["results"]]
    assert got == [("knn-msf", 1), ("knn-msf", 5), ("knn-msf", 20)] + [
        ("knn-dino", 1),
        ("knn-dino", 5),
        ("knn-dino", 20),
        ("linear-fast", None),
    ]
    assert all(0 <= r["top1"] <= 100 and r["n_train"] == 50 and r["n_val"] == 50 for r in report["results"])
    assert (tmp_path / "head" / "head.json").is_file()
    assert all(r["top1"] == round(r["top1"], 2) for r in report["results"])  # 70.2, not 70.19999999999999
    assert json.loads((tmp_path / "head" / "head.json").read_text())["classes"] == sorted(
        FASHION_MNIST_CLASSES
    )


@pytest.mark.slow
def test_eval_table_plots_and_card(exported, tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    result = run(
        "eval", "-m", model, "--train", exported / "train", "--val", exported / "test",
        "--plot", tmp_path / "plots", "--card", model,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["protocol", "k", "T", "train", "val", "top-1", "top-5", "notes"]
    assert [line.split()[:5] for line in lines[1:3]] == [
        ["knn-msf", "1", "-", "50", "50"],
        ["knn-msf", "20", "-", "50", "50"],
    ]
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["confusion_knn-msf-k1.png", "confusion_knn-msf-k20.png", "knn_accuracy_over_k.png"]
    assert all(Image.open(tmp_path / "plots" / p).format == "PNG" for p in pngs)
    card = (model / "README.md").read_text()
    assert "| knn-msf | 20 | - | 50 | 50 |" in card


def test_eval_outputs_are_guarded_before_any_work(exported, tiny_model_dir, tmp_path):
    import os

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine\n")
    plots = "a folder of plots (PNG files only)"
    cases = [
        (["--plot", model / "plots"], f"{model / 'plots'}: inside a model folder, {model}, which msfkit"),
        (["--plot", notes], f"{notes}: already exists; remove it or pass --force"),
        (["--plot", notes, "--force"], f"{notes}: not {plots}; --force only replaces {plots}"),
        (["--head-out", notes, "--force"], f"{notes}: not a linear-head folder; --force only replaces a"),
        (["--card", notes], f"--card {notes}: not an msfkit model folder"),
    ]
    for extra, message in cases:
        args = ["eval", "-m", model, "--train", exported / "train", "--val", exported / "test", *extra]
        result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code == 1 and result.output.startswith(f"Error: {message}"), result.output
        assert result.output.count("\n") == 1
    assert [p.name for p in notes.iterdir()] == ["todo.txt"] and sorted(os.listdir(model)) == sorted(
        os.listdir(tiny_model_dir)
    )
    assert not list(Path(os.environ["MSFKIT_CACHE"]).glob("eval-features/*/emb/*.npy"))  # nothing embedded


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--val", "VAL"], "Error: give --train and --val"),
        (["--train", "FLAT", "--val", "VAL"], "Error: --train FLAT"),
        (
            ["--train", "TRAIN", "--val", "VAL", "-k", "500"],
            "Error: k=500 is larger than the train set (50 items)",
        ),
        (
            ["--train", "TRAIN", "--val", "VAL", "-k", "a,b"],
            "Error: -k 'a,b': expected comma-separated numbers",
        ),
        (["--train", "TRAIN", "--val", "VAL", "--memory", "lots"], "Error: --memory 'lots'"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_line(exported, tiny_model_dir, photos_dir, extra, message):
    names = {"VAL": exported / "test", "TRAIN": exported / "train", "FLAT": photos_dir}
    args = [str(names.get(a, a)) for a in extra]
    result = CliRunner().invoke(cli, ["eval", "-m", str(tiny_model_dir), *args])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(message.replace("FLAT", str(photos_dir)))


@pytest.mark.slow
def test_eval_writes_nothing_in_the_current_folder_unasked(exported, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("eval", "-m", tiny_model_dir, "--train", exported / "train", "--val", exported / "test",
                 "--linear", "--epochs", "1", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_eval_reuses_the_features_of_the_same_model_and_folder(exported, tiny_model_dir, tmp_path):
    import os

    args = ["eval", "-m", tiny_model_dir, "--train", exported / "train", "--val", exported / "test", "--json"]
    first = run(*args)
    assert first.exit_code == 0, first.output
    shards = sorted(Path(os.environ["MSFKIT_CACHE"]).glob("eval-features/*/emb/*.npy"))
    assert len(shards) == 2
    stamps = [p.stat().st_mtime_ns for p in shards]
    again = run(*args)
    assert again.exit_code == 0 and json.loads(again.output)["results"] == json.loads(first.output)["results"]
    assert [p.stat().st_mtime_ns for p in shards] == stamps  # read again, not embedded again


@pytest.mark.slow
def test_eval_of_two_image_folders_first_says_how_many_images_and_about_how_long(tmp_path):
    import subprocess
    import sys

    import torch

    from msfkit.models import Encoder, EncoderConfig

    torch.manual_seed(0)  # a real ResNet18 that sees 8 x 8 images: a thousand images take seconds
    tiny_model_dir = Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=8, resize=8))
    tiny_model_dir = tiny_model_dir.save_pretrained(tmp_path / "m")

    rng = np.random.default_rng(0)
    for split, per_class in (("train", 450), ("val", 51)):
        for c in range(2):
            folder = tmp_path / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    msfkit = str(Path(sys.executable).with_name("msfkit"))
    args = [msfkit, "eval", "-m", tiny_model_dir, "--train", tmp_path / "train", "--val", tmp_path / "val"]
    args += ["-k", "1", "--features-dir", tmp_path / "features", "--batch-size", "64", "--json"]
    run = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["n_train"] == 900  # stdout: the one JSON document, nothing else
    lines = [line for line in run.stderr.splitlines() if line.startswith("embedding ")]
    expected = "embedding 1,002 images (900 train + 102 val) with resnet18 on cpu; about "
    assert len(lines) == 1 and lines[0].startswith(expected), run.stderr
