# ruff: noqa: E501 - command lines read best unbroken
"""`dedup --threshold auto` (msfkit.retrieval.calibrate): on real photos with planted copies it finds
every copy and groups no distinct photo, with a data-calibrated encoder and with a plain random-init
one; where copies and distinct images overlap it says so instead of lumping; and the group galleries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msfkit.retrieval.calibrate import COPIES, copy_variants
from msfkit.retrieval.dedup import find_duplicates
from msfkit.retrieval.render import sheet_size
from tests.msfkit.index_stores import PLANTED, photos_with_copies
from tests.runs import embed

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory) -> Path:
    """A plain random-init ResNet18: ImageNet stem, 224 px, default batch-norm statistics."""
    import torch

    from msfkit.models import Encoder, EncoderConfig

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("plain") / "model"
    Encoder(EncoderConfig(arch="resnet18")).save_pretrained(out)
    return out


def _planted(photo_paths) -> set[frozenset[str]]:
    return {frozenset([p.name] + [f"{p.stem}_{c}.jpg" for c in PLANTED]) for p in photo_paths[:3]}


def _found(groups) -> set[frozenset[str]]:
    return {frozenset(Path(p).name for p in g["path"]) for _, g in groups.groupby("group")}


def test_copies_are_the_four_edits_of_the_image():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8))
    (re_encoded, q), (half, _), (cropped, _), (all_three, _) = copy_variants(image)
    assert len(COPIES) == 4
    assert re_encoded is image and q == 70  # saved as JPEG at quality 70
    assert half.size == (75, 50) and cropped.size == (144, 96) and all_three.size == (72, 48)


@pytest.mark.slow
def test_auto_finds_every_planted_copy_and_no_distinct_photo(photo_index, photo_paths):
    index, _, _, _ = photo_index
    found = find_duplicates(index, threshold="auto")
    cal = found.calibration
    assert _found(found.groups) == _planted(photo_paths)
    assert cal.found_copies == 12 and cal.images == 21  # 3 photos x (original + 3 copies), all sampled
    assert cal.found_similarity > cal.threshold > cal.distinct_similarity
    assert cal.explain().startswith("threshold auto: 0.") and not cal.misses_edits


@pytest.mark.slow
def test_auto_with_a_plain_random_init_encoder_groups_no_distinct_photo_and_says_what_it_misses(
    photo_paths, plain_model, tmp_path
):
    """A plain random network (ImageNet stem, 224 px, default batch-norm statistics) squeezes every
    photo toward one direction: two distinct photos (black cat, controller) score higher than a photo
    and its 2% crop. No threshold can then find the crops without lumping distinct photos: auto finds
    the re-encoded and resized copies, groups no distinct photo, and says that stronger edits are missed."""
    import msfkit
    from msfkit.index import build_index

    photos = photos_with_copies(photo_paths, tmp_path / "photos")
    embed([photos], str(plain_model), tmp_path / "store", draft=True)
    build_index(tmp_path / "store", tmp_path / "index")
    found = find_duplicates(tmp_path / "index", threshold="auto")
    cal = found.calibration
    store = msfkit.open_store(tmp_path / "store")
    row = {Path(p).name: i for i, p in enumerate(store.meta["path"])}
    v = store.vectors
    crop = {p: float(v[row[p.name]] @ v[row[f"{p.stem}_crop.jpg"]]) for p in photo_paths[:3]}
    want = {frozenset([p.name, f"{p.stem}_q40.jpg", f"{p.stem}_half.jpg"] + [f"{p.stem}_crop.jpg"] * (crop[p] >= cal.threshold))
            for p in photo_paths[:3]}  # fmt: skip
    assert _found(found.groups) == want  # no distinct photo in any group
    assert min(crop.values()) < cal.distinct_similarity  # measured: a crop farther than two distinct photos
    assert cal.misses_edits and "will be missed" in cal.explain()


@pytest.mark.slow
def test_when_distinct_images_are_closer_than_copies_it_says_so(tmp_path):
    """Noise images: to a random network, re-encoding destroys a noise texture more than two noise
    images differ, so no threshold separates copies from distinct images. A plain random-init ResNet18
    at 64 px, as at 224 (plain_model) and for other seeds, at a twelfth of the compute."""
    import torch

    from msfkit.models import Encoder, EncoderConfig

    torch.manual_seed(0)
    model = Encoder(EncoderConfig(arch="resnet18", image_size=64, resize=64)).save_pretrained(tmp_path / "m")
    rng = np.random.default_rng(0)
    (tmp_path / "noise").mkdir()
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(
            tmp_path / "noise" / f"n{i}.png"
        )
    embed([tmp_path / "noise"], str(model), tmp_path / "store")
    r = subprocess.run(
        [MSFKIT, "dedup", str(tmp_path / "store"), "--threshold", "auto"], capture_output=True, text=True
    )
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("Error: copies and distinct images are not separable with this encoder")
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_command_prints_why_and_draws_the_groups(photo_index, photo_paths, tmp_path):
    _, store, _, _ = photo_index
    sheet, page = tmp_path / "out" / "groups.png", tmp_path / "out" / "groups.html"
    r = subprocess.run([MSFKIT, "dedup", str(store), "--threshold", "auto", "--grid", str(sheet), "--html", str(page), "-o", str(tmp_path / "g.csv")],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "threshold auto: 0." in r.stderr and "closest distinct images score" in r.stderr
    assert Image.open(sheet).size == sheet_size(3, 3)  # a line per group: its first image + 3 others
    text = page.read_text()
    assert text.count("<section>") == 3 and "group 0: 4 images" in text
    for group in _planted(photo_paths):
        assert all(name in text for name in group)
    assert all(p.name not in text for p in photo_paths[3:12])  # distinct photos are in no group


def test_a_threshold_that_is_neither_a_number_nor_auto_is_one_line(photo_index):
    _, store, _, _ = photo_index
    for bad in ("high", "1.5"):
        r = subprocess.run([MSFKIT, "dedup", str(store), "--threshold", bad], capture_output=True, text=True)
        assert (
            r.returncode != 0 and r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1
        )
