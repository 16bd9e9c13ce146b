"""The output boundary (threat: a mistyped path in a script): every file a command writes goes
through one output guard. A path inside a store, index or model folder is refused with or without
--force; an existing file is replaced only with --force; --force on a folder replaces only a folder
of the kind the command writes. One line of error, nothing written. Through the installed command
(a test's further cases of the same command through its click group in this process), on private
copies of the photo index (the shared one is never written to)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import in_process

# every test here runs the installed command, a server or a Ray cluster: out of the quick loop
pytestmark = pytest.mark.slow


MSFKIT = str(Path(sys.executable).with_name("msfkit"))


def msfkit(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([MSFKIT, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def refused(r: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 1 with one line of error naming `words`, and no traceback."""
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert all(w in lines[0] for w in words), lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def own_index(photo_index, tmp_path_factory):
    """(index, store, query photo, model) of this module: a copy of the photo store and model, indexed
    (so that a guard that lets a write through breaks these copies, never the shared folders)."""
    from msfkit.index import build_index

    _, store, photos, model = photo_index
    root = tmp_path_factory.mktemp("own_index")
    shutil.copytree(store, root / "store")
    shutil.copytree(model, root / "model")
    build_index(root / "store", root / "index")
    return root / "index", root / "store", photos / "audio_mixer.jpg", root / "model"


def test_dedup_never_writes_into_the_store_it_reads(own_index):
    index, store, _, _ = own_index
    before = snapshot(store)
    for run, force in ((msfkit, []), (in_process, ["--force"])):
        r = run("dedup", index, "--threshold", "0.99", "-o", store / "manifest.json", *force)
        refused(r, f"{store / 'manifest.json'}: inside an embedding store", "which msfkit reads")
    assert snapshot(store) == before


def test_search_never_writes_into_the_index_or_the_model_it_reads(own_index):
    index, _, query, model = own_index
    before = snapshot(index), snapshot(model)
    for run, force in ((msfkit, []), (in_process, ["--force"])):
        r = run("search", index, query, "-k", "2", "-o", index / "index.json", *force)
        refused(r, f"{index / 'index.json'}: inside an index folder")
        r = in_process("search", index, query, "-k", "2", "-m", model, "--html", model / "README.md", *force)
        refused(r, f"{model / 'README.md'}: inside a model folder")
    assert (snapshot(index), snapshot(model)) == before


def test_a_link_is_judged_by_where_it_lands(own_index, tmp_path):
    index, store, query, _ = own_index
    link = tmp_path / "results.csv"
    link.symlink_to(store / "manifest.json")
    before = snapshot(store)
    refused(msfkit("search", index, query, "--csv", "-o", link, "--force"), "inside an embedding store")
    assert snapshot(store) == before


def test_an_existing_file_is_replaced_only_with_force(own_index, tmp_path):
    index, _, query, _ = own_index
    photo, notes = tmp_path / "photo.png", tmp_path / "notes.txt"
    photo.write_bytes(b"a user's picture")
    notes.write_text("a user's notes\n")
    refused(msfkit("dedup", index, "--threshold", "0.99", "-o", photo), f"{photo}: already exists", "--force")
    refused(msfkit("search", index, query, "-k", "2", "--grid", notes), f"{notes}: already exists")
    assert photo.read_bytes() == b"a user's picture" and notes.read_text() == "a user's notes\n"
    r = in_process("dedup", index, "--threshold", "0.99", "-o", photo, "--force")
    assert r.returncode == 0, r.stderr
    assert photo.read_text().startswith("group,size,row,path,label,score\n")


def test_index_is_never_built_inside_the_store_it_reads(own_index):
    _, store, _, _ = own_index
    before = snapshot(store)
    refused(msfkit("index", store, "-o", store / "index"), f"{store / 'index'}: inside an embedding store")
    assert snapshot(store) == before


def test_models_init_force_replaces_a_model_folder_and_nothing_else(tmp_path, tiny_model_dir):
    app = tmp_path / "webapp"
    app.mkdir()
    (app / "config.json").write_text('{"port": 8080}\n')
    (app / "README.md").write_text("my web app\n")
    before = snapshot(app)
    args = ("models", "init", "resnet18", "--stem", "cifar", "--image-size", "32")
    refused(
        msfkit(*args, app, "--force"), f"{app}: not a model folder", "--force only replaces a model folder"
    )
    assert snapshot(app) == before
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    before = snapshot(model)
    refused(in_process(*args, "--seed", "1", model), f"{model}: already exists")
    assert snapshot(model) == before
    r = in_process(*args, "--seed", "1", model, "--force")
    assert r.returncode == 0, r.stderr
    assert snapshot(model)["model.safetensors"] != before["model.safetensors"]


def test_export_writes_a_model_folder_only_where_one_may_go(own_index, tmp_path):
    _, store, _, model = own_index
    webapp = tmp_path / "webapp"
    webapp.mkdir()
    (webapp / "config.json").write_text('{"port": 8080}')
    (webapp / "README.md").write_text("my web app")
    (webapp / "enc.onnx").write_text("my own onnx")
    before = snapshot(store), snapshot(webapp)
    refused(msfkit("export", model, store / "exported"), "inside an embedding store")
    refused(in_process("export", model, store / "exported", "--force"), "inside an embedding store")
    refused(in_process("export", model, webapp / "enc.onnx"), "already exists", "--force")
    refused(in_process("export", model, webapp), "already exists", "--force")
    refused(in_process("export", model, webapp, "--force"), "not a model folder")
    assert (snapshot(store), snapshot(webapp)) == before


def test_store_export_replaces_a_file_only_with_force(own_index, tmp_path):
    _, store, _, _ = own_index
    table = tmp_path / "embeddings.csv"
    table.write_text("mine")
    refused(msfkit("store", "export", store, table), "already exists", "--force")
    assert table.read_text() == "mine"
    assert in_process("store", "export", store, table, "--force").returncode == 0
    assert table.read_text() != "mine"
    refused(in_process("store", "export", store, store / "emb.csv", "--force"), "inside an embedding store")


def test_train_never_writes_into_a_folder_of_other_files(own_index, tmp_path):
    _, store, _, _ = own_index
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    args = ["--preset", "demo", "max_steps=1", "knn_every=0"]
    refused(msfkit("train", *args, f"out={mine}"), "not a training run")
    refused(in_process("train", *args, f"out={store / 'run'}"), "inside an embedding store")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and not (store / "run").exists()


def test_embed_never_puts_a_store_inside_a_store_an_index_or_a_model(own_index, photos_dir):
    index, store, _, model = own_index
    before = snapshot(store), snapshot(index), snapshot(model)
    runs = ((msfkit, store / "again"), (in_process, index / "store"), (in_process, model / "store"))
    for run, inside in runs:
        refused(run("embed", photos_dir, "-m", model, "-o", inside, "--force"), "which msfkit reads")
    assert (snapshot(store), snapshot(index), snapshot(model)) == before


def test_datasets_export_writes_only_into_its_own_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for run, force in ((msfkit, []), (in_process, ["--force"])):
        refused(run("datasets", "export", "fashion-mnist", mine, "--per-class", "1", *force), str(mine))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
