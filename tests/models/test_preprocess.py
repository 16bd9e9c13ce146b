"""models.preprocess: the centre crop resizes only the region it keeps, so any shape is embedded in
bounded memory, with the pixels of resizing the whole image and then cropping."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from msfkit.models.config import INTERPOLATIONS
from msfkit.models.preprocess import Preprocess, to_rgb

STRIP_MEMORY_BOUND = 16 * 2**20  # peak-RSS growth; the 1 x 100,000 strip resized whole takes 19.7 GB


def _resize_then_crop(prep: Preprocess, image: Image.Image):
    """The transform as torchvision writes it: the whole image resized by its shorter side, then cropped."""
    resized = F.resize(image, prep.resize, interpolation=InterpolationMode(prep.interpolation))
    return F.pil_to_tensor(F.center_crop(resized, prep.image_size))


@pytest.mark.parametrize("interpolation", [i for i in INTERPOLATIONS if i != "nearest"])
@pytest.mark.parametrize(("size", "resize"), [(224, 256), (32, 32), (64, 73), (100, 90)])
def test_the_crop_has_the_pixels_of_resizing_whole_then_cropping(photo_paths, interpolation, size, resize):
    prep = Preprocess(size, resize, interpolation, (0.5,) * 3, (0.5,) * 3)
    photo = to_rgb(Image.open(photo_paths[0]))
    for image in (photo, photo.resize((301, 17)), photo.resize((16, 40)), photo.rotate(90, expand=True)):
        ours, reference = prep.crop(image).int(), _resize_then_crop(prep, image).int()
        assert ours.shape == reference.shape == (3, size, size)
        diff = (ours - reference).abs()
        assert diff.max() <= 2 and diff.float().mean() < 0.5  # the filter weights, rounded to 8 bits


def test_nearest_picks_the_same_source_pixels_but_where_a_sample_falls_on_a_pixel_edge(photo_paths):
    prep = Preprocess(224, 256, "nearest", (0.5,) * 3, (0.5,) * 3)
    photo = to_rgb(Image.open(photo_paths[1]))
    same = (prep.crop(photo) == _resize_then_crop(prep, photo)).all(0).float().mean()
    assert same > 0.9


def test_an_image_already_at_the_crop_size_is_its_own_crop(photo_paths):
    image = to_rgb(Image.open(photo_paths[2])).resize((28, 28))
    for interpolation in INTERPOLATIONS:
        prep = Preprocess(28, 28, interpolation, (0.5,) * 3, (0.5,) * 3)
        assert (prep.crop(image) == F.pil_to_tensor(image)).all()


_STRIPS = """
import json, sys
from PIL import Image
from msfkit.data.images import decode_image
from msfkit.models.preprocess import Preprocess

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

prep = Preprocess(224, 256, "bilinear", (0.5,) * 3, (0.5,) * 3)
prep.crop(Image.new("RGB", (300, 300)))  # torchvision imported before anything is measured
for path in sys.argv[1:]:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak RSS (VmHWM) reset to the RSS now
    before = status("VmRSS")
    crop = prep.crop(decode_image(path).image)
    grown = status("VmHWM") - before
    print(json.dumps({"shape": list(crop.shape), "grown": grown, "middle": crop[:, 112, 112].tolist()}))
"""


@pytest.mark.slow
def test_thin_strips_are_cropped_in_bounded_memory(tmp_path):
    """A 1 x 100,000 PNG resized whole by its shorter side to 256 would be 256 x 25,600,000 pixels; each
    strip is decoded and cropped in a fresh process that measures its peak-RSS growth (Linux VmHWM,
    reset before each strip)."""
    paths = []
    for size in [(1, 100_000), (100_000, 1), (4000, 12)]:
        strip = Image.new("RGB", size, (200, 30, 60))
        strip.putpixel((size[0] // 2, size[1] // 2), (0, 0, 255))
        paths.append(tmp_path / f"strip-{size[0]}x{size[1]}.png")
        strip.save(paths[-1])
    command = [sys.executable, "-c", _STRIPS, *map(str, paths)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for line in run.stdout.splitlines():
        out = json.loads(line)
        assert out["shape"] == [3, 224, 224] and out["grown"] < STRIP_MEMORY_BOUND
        assert out["middle"] != [200, 30, 60]  # the middle of the crop is the middle of the strip
    assert len(run.stdout.splitlines()) == 3
