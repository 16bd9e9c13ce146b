"""models/config.py: a config.json with a bad value is one error naming the key, on load, through the
library and the installed command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import msfkit
from msfkit.models.errors import MsfkitError

MSFKIT = str(Path(sys.executable).with_name("msfkit"))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("std", [0, 0, 0], "std must be three positive numbers"), ("image_size", 0, "image_size must be"),
     ("image_size", "32", "image_size must be"), ("mean", [0.5, 0.5], "mean must be three finite numbers"),
     ("resize", 1e9, "resize must be")],
)  # fmt: skip
@pytest.mark.slow
def test_a_config_with_bad_values_is_one_error_on_load(tmp_path, tiny_model_dir, key, value, message):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, key: value}))
    with pytest.raises(MsfkitError, match=message):
        msfkit.load(folder)
    r = subprocess.run([MSFKIT, "models", "info", folder], capture_output=True, text=True)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89\xae\x00binary", "unreadable config (UnicodeDecodeError"),
        (b"[1, 2]", "a config is a JSON object, not list"),
        (b"{not json", "unreadable config (JSONDecodeError"),
    ],
)
@pytest.mark.slow
def test_an_unreadable_config_is_one_error_naming_the_file(tmp_path, tiny_model_dir, content, message):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "config.json").write_bytes(content)
    r = subprocess.run([MSFKIT, "models", "info", folder], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"Error: {folder / 'config.json'}: {message}")


def test_the_default_resize_keeps_small_images_whole_and_crops_larger_ones_the_imagenet_way():
    from msfkit.models.config import default_resize

    assert [default_resize(s) for s in (8, 32, 64)] == [8, 32, 64]
    assert [default_resize(s) for s in (65, 96, 224, 448)] == [74, 110, 256, 512]
