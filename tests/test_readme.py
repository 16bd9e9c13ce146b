"""The README's Python API example runs as written (on a tiny real model and real photos)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_example() -> str:
    text = README.read_text()
    section = text[text.index("### Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


@pytest.mark.slow
def test_the_python_api_example_runs(tmp_path, monkeypatch, photo_paths, tiny_model_dir, capsys):
    shutil.copytree(tiny_model_dir, tmp_path / "my-model")
    (tmp_path / "photos").mkdir()
    for p in photo_paths[:7]:
        shutil.copy(p, tmp_path / "photos" / p.name)
    shutil.copy(photo_paths[7], tmp_path / "photos" / "cat.jpg")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_python_example(), str(README), "exec"), scope)  # noqa: S102 - the repo's own README

    hits, store, vector = scope["hits"], scope["store"], scope["vector"]
    assert len(store) == 8 and list(hits["rank"]) == [1, 2, 3]
    assert Path(hits["path"][0]).name == "cat.jpg" and hits["score"][0] == pytest.approx(1.0, abs=1e-5)
    row = list(store.meta["path"]).index("cat.jpg")
    assert abs(vector[0] - store.vectors[row]).max() <= 1e-6
    protocols = [r["protocol"] for r in scope["report"]["results"]]
    assert protocols == ["knn-msf", "knn-msf", "knn-dino", "linear-fast"]
    assert "knn-msf 20" in capsys.readouterr().out
