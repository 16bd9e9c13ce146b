"""`msfkit.eval.inputs` + `msfkit.eval.run`: image folders, embedding stores and the named dataset as
inputs (real Fashion-MNIST images, a tiny real ResNet18), the report, the model card, and every bad input."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from msfkit.data.datasets import FASHION_MNIST_CLASSES, ArrayImageDataset, load_fashion_mnist
from msfkit.eval.features import extract_features
from msfkit.eval.inputs import load_inputs
from msfkit.eval.knn import knn_accuracy
from msfkit.eval.report import format_table, results_markdown, write_card
from msfkit.eval.run import evaluate
from msfkit.models import Encoder, EncoderConfig
from msfkit.models.errors import MsfkitError
from tests.runs import embed

PER_CLASS = 6


def _write_split(root, images, labels, per_class, classes=FASHION_MNIST_CLASSES):
    """root/CLASS/NNNNN.png for the first `per_class` images of every class; returns their indices."""
    picked = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(len(classes))])
    for i in picked:
        (root / classes[labels[i]]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(root / classes[labels[i]] / f"{i:05d}.png")
    return np.sort(picked)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmnist")
    xi, yi = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    _write_split(root / "train", xi, yi, PER_CLASS)
    _write_split(root / "val", xt, yt, PER_CLASS)
    return root


@pytest.fixture(scope="module")
def stores(folders, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores")
    for split in ("train", "val"):
        embed([folders / split], str(tiny_model_dir), out / split, progress=False, device="cpu")
    return out


@pytest.mark.slow
def test_folders_embed_with_the_models_centre_crop(folders, tiny_model_dir, tmp_path):
    inputs, encoder = load_inputs(
        model=str(tiny_model_dir), train=folders / "train", val=folders / "val", features_dir=tmp_path
    )
    assert inputs.source["kind"] == "folders" and inputs.model["fingerprint"] == encoder.fingerprint
    assert len(inputs.train_labels) == 10 * PER_CLASS and set(inputs.train_labels) == set(
        FASHION_MNIST_CLASSES
    )
    # The same images through the model's own transform give the same features.
    paths = sorted((folders / "val").glob("*/*.png"))
    images = np.stack([np.asarray(Image.open(p)) for p in paths])
    expected, _ = extract_features(encoder, ArrayImageDataset(images, np.zeros(len(paths))))
    np.testing.assert_allclose(inputs.val_feats, expected, atol=1e-5)
    assert list(inputs.val_labels) == [p.parent.name for p in paths]
    assert len(list(tmp_path.glob(f"train-{encoder.fingerprint}-*/manifest.json"))) == 1  # kept for reuse


@pytest.mark.slow
def test_the_feature_folder_keeps_each_sources_features_apart(folders, tiny_model_dir, tmp_path):
    kept = tmp_path / "features"
    first, _ = load_inputs(model=str(tiny_model_dir), train=folders / "train", val=folders / "val",
                           features_dir=kept)  # fmt: skip
    other = tmp_path / "val2"
    shutil.copytree(folders / "val", other)
    shutil.rmtree(next(p for p in other.iterdir() if p.is_dir()))  # one class fewer
    second, _ = load_inputs(model=str(tiny_model_dir), train=folders / "train", val=other, features_dir=kept)
    assert len(second.val_labels) == len(first.val_labels) - PER_CLASS
    again, _ = load_inputs(model=str(tiny_model_dir), train=folders / "train", val=folders / "val",
                           features_dir=kept)  # fmt: skip
    np.testing.assert_array_equal(again.val_feats, first.val_feats)
    assert len(list(kept.glob("val-*"))) == 2 and len(list(kept.glob("train-*"))) == 1


@pytest.mark.slow
def test_stores_need_no_model_and_match_the_folders(folders, stores, tiny_model_dir, tmp_path):
    from_stores, encoder = load_inputs(train=stores / "train", val=stores / "val")
    assert encoder is None and from_stores.source["kind"] == "stores"
    from_folders, _ = load_inputs(model=str(tiny_model_dir), train=stores / "train", val=folders / "val")
    np.testing.assert_array_equal(from_stores.val_feats, from_folders.val_feats)
    np.testing.assert_array_equal(from_stores.val_labels, from_folders.val_labels)


def test_report_names_protocol_k_t_and_sizes(stores, tmp_path):
    inputs, _ = load_inputs(train=stores / "train", val=stores / "val")
    report, preds = evaluate(
        inputs, knn_protocols=("msf", "dino"), linear_preset="fast", epochs=5, head_out=tmp_path / "head"
    )
    rows = {(r["protocol"], r["k"]): r for r in report["results"]}
    assert sorted(rows, key=str) == sorted(
        [("knn-msf", 1), ("knn-msf", 20), ("knn-dino", 20), ("linear-fast", None)], key=str
    )
    direct = knn_accuracy(inputs.train_feats, inputs.train_labels, inputs.val_feats, inputs.val_labels)
    assert rows["knn-msf", 20]["top1"] == round(direct["top1"][20], 2)
    assert rows["knn-dino", 20]["temperature"] == 0.07 and rows["knn-dino", 20]["top5"] is not None
    assert rows["knn-msf", 1]["temperature"] is None and rows["knn-msf", 1]["top5"] is None
    assert all(r["n_train"] == 60 and r["n_val"] == 60 for r in report["results"])
    assert (tmp_path / "head" / "head.safetensors").is_file() and preds["linear-fast"].shape == (60,)
    table = format_table(report)
    assert table.splitlines()[0].split() == ["protocol", "k", "T", "train", "val", "top-1", "top-5", "notes"]
    dino = rows["knn-dino", 20]
    assert ["knn-dino", "20", "0.07", "60", "60", f"{dino['top1']:.2f}", f"{dino['top5']:.2f}"] in [
        line.split() for line in table.splitlines()
    ]
    assert "| knn-msf | 1 | - | 60 | 60 |" in results_markdown(report)


def test_train_fraction_samples_per_class(stores):
    inputs, _ = load_inputs(train=stores / "train", val=stores / "val")
    report, _ = evaluate(inputs, knn_protocols=("msf",), ks=(1,), train_fraction=0.5)
    assert (
        report["n_train"] == 30 and report["results"][0]["n_train"] == 30 and report["train_fraction"] == 0.5
    )


def test_card_gets_the_results_of_its_own_model_only(stores, tiny_model_dir, tmp_path):
    inputs, _ = load_inputs(train=stores / "train", val=stores / "val")
    report, _ = evaluate(inputs, knn_protocols=("msf",))
    card_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, card_dir)
    card = write_card(card_dir, report).read_text()
    assert "| knn-msf | 20 | - | 60 | 60 |" in card and "No evaluation recorded yet" not in card
    assert card.count("msfkit:results:begin") == 1
    torch.manual_seed(1)
    other = Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(MsfkitError, match=r"^--card .*other and the results come from different models: "):
        write_card(tmp_path / "other", report)


@pytest.mark.slow
def test_named_dataset_with_cached_features(tiny_model_dir, tmp_path, monkeypatch):
    """--dataset reads the train/test splits (here a real 60/30-image cut of the IDX files)."""
    src = load_fashion_mnist.__globals__["fashion_mnist_dir"]()
    cut = tmp_path / "fm"
    cut.mkdir()
    for name, n in (("train", 60), ("t10k", 30)):
        for kind in ("images-idx3", "labels-idx1"):
            with gzip.open(src / f"{name}-{kind}-ubyte.gz") as f:
                data = f.read()
            header = 16 if kind.startswith("images") else 8
            row = 28 * 28 if kind.startswith("images") else 1
            head = bytearray(data[:header])
            head[4:8] = n.to_bytes(4, "big")
            with gzip.open(cut / f"{name}-{kind}-ubyte.gz", "wb") as f:
                f.write(bytes(head) + data[header : header + n * row])
    monkeypatch.setenv("MSFKIT_FASHION_MNIST", str(cut))
    inputs, encoder = load_inputs(
        model=str(tiny_model_dir), dataset="fashion-mnist", features_dir=tmp_path / "f"
    )
    assert inputs.train_feats.shape == (60, 512) and len(inputs.val_labels) == 30
    assert (tmp_path / "f" / f"fashion-mnist-train-{encoder.fingerprint}.npz").is_file()
    again, _ = load_inputs(model=str(tiny_model_dir), dataset="fashion-mnist", features_dir=tmp_path / "f")
    np.testing.assert_array_equal(again.train_feats, inputs.train_feats)
    report, _ = evaluate(inputs, knn_protocols=(), linear_preset="msf", epochs=1, encoder=encoder)
    (row,) = report["results"]
    assert (
        row["protocol"] == "linear-msf" and row["epochs"] == 1 and row["lr"] == 0.01 and row["n_train"] == 60
    )


@pytest.mark.slow
def test_store_without_labels(photos_dir, tiny_model_dir, stores, tmp_path):
    embed([photos_dir], str(tiny_model_dir), tmp_path / "flat", progress=False, device="cpu")
    with pytest.raises(MsfkitError, match="have no label"):
        load_inputs(train=tmp_path / "flat", val=stores / "val")


@pytest.mark.slow
def test_features_of_different_models(stores, tmp_path, folders):
    torch.manual_seed(2)
    Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32)).save_pretrained(
        tmp_path / "m2"
    )
    embed([folders / "val"], str(tmp_path / "m2"), tmp_path / "val2", progress=False, device="cpu")
    with pytest.raises(MsfkitError, match="^the train split and the val split come from different models: "):
        load_inputs(train=stores / "train", val=tmp_path / "val2")
    different = r"^the stores and the model given come from different models: .*m2 \(fingerprint "
    with pytest.raises(MsfkitError, match=different):
        load_inputs(model=str(tmp_path / "m2"), train=stores / "train", val=stores / "val")


@pytest.mark.slow
def test_val_class_unknown_to_train(stores, folders, tiny_model_dir, tmp_path):
    val = tmp_path / "val"
    shutil.copytree(folders / "val", val)
    shutil.copytree(folders / "val" / "bag", val / "handbag")
    inputs, _ = load_inputs(model=str(tiny_model_dir), train=stores / "train", val=val)
    with pytest.raises(MsfkitError, match="val has classes the train set lacks: handbag"):
        evaluate(inputs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train": "EMPTY", "val": "VAL", "model": "MODEL"}, "train split is empty"),
        ({"train": "TRAIN"}, "give --train and --val"),
        ({"dataset": "fashion-mnist"}, "needs a model"),
        ({"dataset": "fashion-mnist", "train": "TRAIN", "val": "VAL", "model": "M"}, "not both"),
        ({"train": "NOWHERE", "val": "VAL"}, "no such folder"),
        ({"train": "IMAGES", "val": "VAL"}, "give the model"),
    ],
)
def test_bad_inputs_are_one_clear_error(stores, folders, tiny_model_dir, tmp_path, kwargs, message):
    (tmp_path / "empty").mkdir()
    names = {
        "EMPTY": tmp_path / "empty",
        "VAL": stores / "val",
        "TRAIN": stores / "train",
        "NOWHERE": tmp_path / "nowhere",
        "IMAGES": folders / "train",
        "M": "unused",
        "MODEL": str(tiny_model_dir),
    }
    args = {k: names.get(v, v) for k, v in kwargs.items()}
    with pytest.raises(MsfkitError, match=message):
        load_inputs(**args)


def test_msf_preset_needs_images(stores):
    inputs, _ = load_inputs(train=stores / "train", val=stores / "val")
    inputs.train_images = None
    with pytest.raises(MsfkitError, match="runs the backbone on the train images"):
        evaluate(inputs, knn_protocols=(), linear_preset="msf")
