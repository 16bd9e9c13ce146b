"""What `pip install msfkit` (not the editable install the tests run from) gets: a real wheel built
from this tree, without a setuptools warning, holding every module and data file of the four source
folders (the serve page's static files too)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"msfkit": "msfkit", "models": "msfkit/models", "training": "msfkit/training", "cli": "msfkit/cli"}
# what setuptools says about a configuration it will not follow as written, e.g. "BuildBackendWarning:
# Package 'msfkit.serve.static' is absent from the `packages` configuration"
WARNING = re.compile(r"\b\w+Warning: .*")


def _sources() -> set[str]:
    """Wheel paths of every file under the package folders (caches and bytecode left out)."""
    out = set()
    for folder, target in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                out.add(f"{target}/{path.relative_to(ROOT / folder).as_posix()}")
    return out


@pytest.fixture(scope="module")
def wheel_build(tmp_path_factory) -> tuple[set[str], str]:
    """(the files in the wheel, pip's verbose output, which carries the build backend's warnings)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools builds in place, and a stale build/ folder would hide a miss.
    src = tmp / "src"
    for name in FOLDERS:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-v"]
    r = subprocess.run([*cmd, "-w", str(tmp)], check=True, capture_output=True, text=True, cwd=tmp)
    (wheel,) = tmp.glob("msfkit-*.whl")
    return set(zipfile.ZipFile(wheel).namelist()), r.stdout + r.stderr


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_data_file(wheel_build):
    packed, _ = wheel_build
    assert {"msfkit/serve/static/index.html", "msfkit/serve/static/app.js"} <= packed
    missing = sorted(_sources() - packed)
    assert not missing, f"not in the wheel (pyproject [tool.setuptools] packages / package-data): {missing}"


@pytest.mark.slow
def test_the_wheel_builds_without_a_setuptools_warning(wheel_build):
    _, output = wheel_build
    assert "Successfully built msfkit" in output  # the verbose output, where the warnings would be
    assert not WARNING.findall(output)
