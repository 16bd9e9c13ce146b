"""What `pip install msfkit` (not the editable install the tests run from) gets: a real wheel built
from this tree holds every module and data file of the four source folders."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"msfkit": "msfkit", "models": "msfkit/models", "training": "msfkit/training", "cli": "msfkit/cli"}


def _sources() -> set[str]:
    """Wheel paths of every file under the package folders (caches and bytecode left out)."""
    out = set()
    for folder, target in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                out.add(f"{target}/{path.relative_to(ROOT / folder).as_posix()}")
    return out


def test_the_wheel_holds_every_module_and_data_file(tmp_path):
    # Built from a copy: setuptools builds in place, and a stale build/ folder would hide a miss.
    src = tmp_path / "src"
    for name in FOLDERS:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*cmd, "-w", str(tmp_path)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("msfkit-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_sources() - packed)
    assert not missing, f"not in the wheel (pyproject [tool.setuptools] packages / package-data): {missing}"
