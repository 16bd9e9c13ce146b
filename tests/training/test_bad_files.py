"""Unreadable training images: skipped, listed in RUN/bad_files.csv, replaced by a fixed other image,
counted in metrics.csv; a resumed run is bit-identical; too many bad files stop the run with one line."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from PIL import Image

from msfkit.data.datasets import image_folder, load_fashion_mnist
from msfkit.models.errors import MsfkitError
from msfkit.training.bad_files import BadFiles, SkipBadImages
from msfkit.training.checkpoint import load_checkpoint
from msfkit.training.config import load_config, resolve_config
from msfkit.training.loop import train

# 16 files, 3 of them bad, batches of 4: 4 steps per epoch
TINY = [
    "arch=resnet18", "stem=cifar-s2", "image_size=32", "batch_size=4", "epochs=3", "k=2", "bank_size=8",
    "threads=1", "precision=fp32", "knn_every=0", "log_every=1",
]  # fmt: skip
BAD = {"b-empty.jpg": "zero bytes", "e-truncated.jpg": "truncated", "h-notes.jpg": "not an image"}


def _folder(tmp_path):
    """13 real Fashion-MNIST JPEGs and 3 bad files, sorted so the bad ones sit between good ones."""
    root = tmp_path / "images"
    root.mkdir()
    images, _ = load_fashion_mnist("train")
    names = [f"{chr(ord('a') + i)}-{i:02d}.jpg" for i in range(16)]
    good = [n for n in names if n[0] not in "beh"]
    for i, name in enumerate(good):
        Image.fromarray(images[i]).convert("RGB").save(root / name, quality=90)
    (root / "b-empty.jpg").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(images[20]).convert("RGB").resize((64, 64)).save(buf, "JPEG", quality=95)
    (root / "e-truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "h-notes.jpg").write_text("these are my notes, not a photo\n")
    return root


def _bad_rows(run):
    if not (run / "bad_files.csv").exists():
        return {}
    with (run / "bad_files.csv").open(newline="") as f:
        return {row["path"].rsplit("/", 1)[1]: row["reason"] for row in csv.DictReader(f)}


def test_a_bad_item_is_replaced_by_the_next_readable_one_whatever_the_order(tmp_path):
    root = _folder(tmp_path)
    ds = image_folder(root)
    names = [p.rsplit("/", 1)[1] for p in ds.paths]
    wrapped = SkipBadImages(ds, BadFiles(tmp_path / "bad.csv"))
    # reading the bad item first or last gives the same replacement
    e = names.index("e-truncated.jpg")
    later, j = wrapped.resolve(e)
    assert names[j] == names[e + 1] and np.array_equal(np.asarray(later), np.asarray(ds.image(e + 1)))
    assert wrapped.resolve(names.index("b-empty.jpg"))[1] == names.index("b-empty.jpg") + 1
    with pytest.raises(MsfkitError, match="truncated"):
        ds.image(e)  # the plain dataset still refuses it
    reasons = BadFiles(tmp_path / "bad.csv").read()
    assert sorted(p.rsplit("/", 1)[1] for p in reasons) == ["b-empty.jpg", "e-truncated.jpg"]


def test_the_count_follows_what_other_processes_append(tmp_path):
    counter, writer = BadFiles(tmp_path / "bad.csv"), BadFiles(tmp_path / "bad.csv")  # the loop, a worker
    assert counter.count() == 0
    writer.record("a.jpg", "empty file")
    writer.record("b.jpg", "truncated")
    assert counter.count() == 2 == counter.count()
    BadFiles(tmp_path / "bad.csv").record("c.jpg", "not an image")  # another worker: its own header check
    assert counter.count() == 3 == len(counter.read())


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.slow
def test_bad_files_are_skipped_recorded_and_a_resume_is_exact(tmp_path, workers):
    root = _folder(tmp_path)
    common = [*TINY, f"data={root}", f"workers={workers}", "max_bad_share=0.25"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(load_config(overrides=[*common, f"out={straight}", "max_steps=7"]), progress=False)
    # the same run stopped at step 3, inside epoch 1 (which reads every file once) ...
    train(load_config(overrides=[*common, f"out={resumed}", "max_steps=3"]), progress=False)
    assert set(_bad_rows(resumed)) <= set(BAD)
    # ... and resumed to step 7: the bad files are read (and skipped) again, the run goes on
    train(
        resolve_config(overrides=[f"out={resumed}", "max_steps=7"], resume=True), resume=True, progress=False
    )

    for run in (straight, resumed):
        assert {n: r.split(":")[0].split(" (")[0] for n, r in _bad_rows(run).items()} == BAD
        with (run / "metrics.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows[-1]["step"] == "7" and rows[-1]["bad_files"] == "3"
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(resumed / "checkpoint.pt")
    assert a["step"] == b["step"] == 7 and a["metrics"]["bad_files"] == 3
    for key in a["model"]:  # online, target, predictor and bank: bit-identical
        assert torch.equal(a["model"][key], b["model"][key]), key


@pytest.mark.slow
def test_more_bad_files_than_the_allowed_share_stop_the_run_with_one_line(tmp_path):
    root = _folder(tmp_path)
    cfg = load_config(overrides=[*TINY, f"data={root}", "workers=0", f"out={tmp_path / 'run'}"])
    assert cfg.max_bad_share == 0.01  # the default: 3 of 16 is far above it
    with pytest.raises(MsfkitError) as e:
        train(cfg, progress=False)
    message = str(e.value)
    assert "\n" not in message and "of 16 training images are unreadable" in message
    assert "max_bad_share=0.01" in message and str(tmp_path / "run" / "bad_files.csv") in message
