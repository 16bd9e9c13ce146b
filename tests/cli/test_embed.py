"""`msfkit embed` through click: the last line, exit codes, one-line errors, --json, MSFKIT_MODEL."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from msfkit.cli.main import cli
from msfkit.models import Encoder, EncoderConfig
from msfkit.store import open_store


@pytest.fixture
def runner():
    return CliRunner()


def _bad(folder):
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not a picture")
    return folder


def test_help_lists_the_options(runner):
    result = runner.invoke(cli, ["embed", "-h"])
    assert result.exit_code == 0
    for option in ("--model", "--output", "--precision", "--shard", "--force", "--strict", "--workers"):
        assert option in result.output


def test_last_line_counts_embedded_failed_skipped(runner, photos_dir, tiny_model_dir, tmp_path):
    (photos_dir / "empty.jpg").write_bytes(b"")
    args = ["embed", str(photos_dir), "-m", str(tiny_model_dir), "-o", str(tmp_path / "s"), "--workers", "0"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("embedded 8, failed 1, skipped 0 in ")
    again = runner.invoke(cli, [*args, "--strict"])
    assert again.exit_code == 1
    assert again.stdout.splitlines()[-1].startswith("embedded 0, failed 0, skipped 9 in ")


def test_json_output_and_model_from_the_environment(
    runner, photos_dir, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("MSFKIT_MODEL", str(tiny_model_dir))
    result = runner.invoke(
        cli, ["embed", str(photos_dir), "-o", str(tmp_path / "s"), "--json", "--workers", "0"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["embedded"], summary["failed"], summary["store_embedded"]) == (8, 0, 8)
    assert len(open_store(tmp_path / "s")) == 8


def test_nothing_embedded_exits_non_zero_after_the_counts(runner, tmp_path, tiny_model_dir):
    args = ["embed", str(_bad(tmp_path / "bad")), "-m", str(tiny_model_dir), "-o", str(tmp_path / "s")]
    result = runner.invoke(cli, [*args, "--workers", "0", "-q"])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1].startswith("embedded 0, failed 2, skipped 0 in ")
    assert sorted(open_store(tmp_path / "s").errors["path"]) == ["empty.jpg", "notes.png"]


def test_a_store_of_another_model_or_source_is_a_one_line_error(runner, photos_dir, tiny_model_dir, tmp_path):
    out = str(tmp_path / "s")
    assert (
        runner.invoke(
            cli, ["embed", str(photos_dir), "-m", str(tiny_model_dir), "-o", out, "--workers", "0"]
        ).exit_code
        == 0
    )
    torch.manual_seed(3)
    other = Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32)).save_pretrained(
        tmp_path / "m2"
    )
    result = runner.invoke(cli, ["embed", str(photos_dir), "-m", str(other), "-o", out])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith(
        f"Error: the store {out} and this run's model come from different models: "
    )
    copy = tmp_path / "copy"
    shutil.copytree(photos_dir, copy)
    result = runner.invoke(cli, ["embed", str(copy), "-m", str(tiny_model_dir), "-o", out])
    assert result.exit_code == 1
    fix = "use --force to replace it, or another -o"
    assert result.output == f"Error: {out} holds images of {photos_dir}, not {copy}; {fix}\n"


def test_usage_errors(runner, photos_dir, tiny_model_dir, tmp_path):
    base = ["embed", str(photos_dir), "-o", str(tmp_path / "s")]
    result = runner.invoke(cli, base)
    assert result.exit_code == 1 and result.output == "Error: no model: pass -m/--model or set MSFKIT_MODEL\n"
    result = runner.invoke(cli, [*base, "-m", str(tiny_model_dir), "--shard", "2/2"])
    assert result.exit_code == 2 and "need 0 <= i < n" in result.output
    result = runner.invoke(
        cli, ["embed", str(tmp_path / "nowhere"), "-m", str(tiny_model_dir), "-o", str(tmp_path / "s")]
    )
    assert result.exit_code == 1 and result.output.endswith("nowhere: no such file or folder\n")


def _many_tiny_images(root, per_class: int, classes: int = 2):
    """`classes` class folders of `per_class` distinct 8 x 8 PNGs: a long job as counted, quick to run."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return root


def _eight_pixel_model(folder):
    """A real ResNet18 that sees 8 x 8 images: a thousand images take seconds, not a minute."""
    torch.manual_seed(0)
    config = EncoderConfig(arch="resnet18", stem="cifar", image_size=8, resize=8)
    return Encoder(config).save_pretrained(folder)


@pytest.mark.slow
def test_a_long_job_says_how_many_images_and_about_how_long_on_stderr_only(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    src, tiny_model_dir = _many_tiny_images(tmp_path / "many", 501), _eight_pixel_model(tmp_path / "m")
    msfkit = str(Path(sys.executable).with_name("msfkit"))
    args = [msfkit, "embed", str(src), "-m", str(tiny_model_dir), "-o", str(tmp_path / "s"), "--workers", "0"]
    # 8 batches of 128: below COMPILE_MIN_BATCHES, so no package is built (tested in test_forward.py)
    run = subprocess.run([*args, "--batch-size", "128", "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["embedded"] == 1002  # stdout: the one JSON document, nothing else
    lines = [line for line in run.stderr.splitlines() if line.startswith("embedding ")]
    assert len(lines) == 1 and lines[0].startswith("embedding 1,002 images with resnet18 on cpu; about ")
    assert lines[0].endswith((" s", " min")), lines[0]


@pytest.mark.slow
def test_an_unreadable_sub_folder_is_reported_and_recorded_and_the_rest_embeds(photo_paths, tiny_model_dir):
    """Run as an unprivileged user (root reads a chmod 000 folder anyway): the folder is a warning
    line, an errors.parquet record and a count; every readable image is embedded."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    msfkit = str(Path(sys.executable).with_name("msfkit"))
    as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    probe = subprocess.run([*as_user, sys.executable, "-c", "import msfkit.cli"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot run msfkit as an unprivileged user here ({' '.join(as_user)} failed)")
    base = Path(tempfile.mkdtemp(prefix="msfkit-unreadable-"))  # outside pytest's root-only folder
    try:
        base.chmod(0o777)
        shutil.copytree(tiny_model_dir, base / "model")
        for c, photos in (("open", photo_paths[:3]), ("secret", photo_paths[3:5])):
            (base / "src" / c).mkdir(parents=True)
            for p in photos:
                shutil.copy(p, base / "src" / c / p.name)
        for path in base.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        (base / "src" / "secret").chmod(0)
        env = dict(os.environ, HOME=str(base), HF_HOME=str(base / "hf"), MSFKIT_CACHE=str(base / "cache"))
        args = [msfkit, "embed", str(base / "src"), "-m", str(base / "model"), "-o", str(base / "s")]
        args += ["--workers", "0", "--json"]
        run = subprocess.run([*as_user, *args], capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        assert (summary["embedded"], summary["failed"], summary["unreadable_folders"]) == (3, 1, 1)
        assert f"warning: cannot read the folder {base / 'src' / 'secret'}" in run.stderr
        store = open_store(base / "s")
        assert store.errors.to_dict("records") == [{"path": "secret", "reason": "unreadable folder"}]
        assert sorted(store.meta["path"]) == sorted(f"open/{p.name}" for p in photo_paths[:3])
    finally:
        (base / "src" / "secret").chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_bf16_on_a_cpu_that_only_emulates_it_is_one_warning_line(photos_dir, tiny_model_dir, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from msfkit.models.runtime import cpu_has_fast_bf16

    msfkit = str(Path(sys.executable).with_name("msfkit"))
    args = [msfkit, "embed", str(photos_dir), "-m", str(tiny_model_dir), "-o", str(tmp_path / "s"), "--json"]
    run = subprocess.run([*args, "--precision", "bf16", "--workers", "0"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["embedded"] > 0  # stdout stays the one JSON document
    warnings = [line for line in run.stderr.splitlines() if "no native bf16" in line]
    assert len(warnings) == (0 if cpu_has_fast_bf16() else 1), run.stderr
    assert all(line.endswith("--precision fp32 is faster") for line in warnings)


def test_a_parquet_of_encoded_images_embeds_as_its_photos_do(runner, photos_dir, tiny_model_dir, tmp_path):
    """--image-column / --label-column: the cells of a table (datasets.Image structs), embedded to the
    vectors of the same photos as files; a truncated cell and a path out of the folder are error rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    photos = sorted(photos_dir.glob("*.jpg"))
    cells = [{"bytes": p.read_bytes(), "path": p.name} for p in photos]
    cells += [{"bytes": photos[0].read_bytes()[:300], "path": None}, {"bytes": None, "path": "../x.jpg"}]
    kind = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"img": pa.array(cells, kind), "cls": ["a", "b"] * (len(cells) // 2)})
    pq.write_table(table, tmp_path / "photos.parquet", row_group_size=3)
    common = ["-m", str(tiny_model_dir), "--workers", "0"]
    args = [
        "embed",
        str(tmp_path / "photos.parquet"),
        *common,
        "-o",
        str(tmp_path / "s"),
        "--image-column",
        "img",
    ]
    result = runner.invoke(cli, [*args, "--label-column", "cls"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith(f"embedded {len(photos)}, failed 2, skipped 0 in ")
    store = open_store(tmp_path / "s")
    assert store.meta["path"].tolist() == [f"photos.parquet/img/{i:09d}" for i in range(len(photos))]
    assert store.meta["label"].tolist() == ["a", "b"] * (len(photos) // 2)
    reasons = dict(zip(store.errors["path"], store.errors["reason"], strict=True))
    n = len(photos)
    assert (
        reasons[f"photos.parquet/img/{n + 1:09d}"]
        == "unsafe path in the table photos.parquet: has a '..' part ('../x.jpg')"
    )
    assert reasons[f"photos.parquet/img/{n:09d}"].startswith("truncated")
    assert runner.invoke(cli, ["embed", str(photos_dir), *common, "-o", str(tmp_path / "f")]).exit_code == 0
    np.testing.assert_allclose(store.vectors, open_store(tmp_path / "f").vectors, atol=1e-5)
