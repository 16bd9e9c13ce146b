"""`msfkit.outputs.check_output`: the output guard's cases on real folders (a store, an index folder,
a model folder, a user's folders and links); the commands' use of it is in tests/security."""

from __future__ import annotations

import json

import numpy as np
import pytest

from msfkit.index import build_index
from msfkit.models.errors import MsfkitError
from msfkit.outputs import FILE, INDEX, MODEL, STORE, check_output
from tests.msfkit.index_stores import write_vector_store


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("outputs")
    store = write_vector_store(root / "store", np.eye(4, 8, dtype=np.float32))
    build_index(store, root / "index", kind="flat")
    return store, root / "index", tiny_model_dir


def test_nothing_is_written_inside_a_store_an_index_or_a_model_folder(folders):
    for folder in folders:
        for kind in (FILE, STORE, INDEX, MODEL):
            for force in (False, True):
                with pytest.raises(MsfkitError, match=f"inside .*{folder.name}, which msfkit reads"):
                    check_output(folder / "deeper" / "out.csv", force=force, kind=kind)


def test_a_folder_is_replaced_only_by_its_own_kind_with_force(folders, tmp_path):
    store, index, model = folders
    assert check_output(index, force=True, kind=INDEX) == index
    assert check_output(model, force=True, kind=MODEL) == model
    with pytest.raises(MsfkitError, match="already exists; remove it or pass --force"):
        check_output(index, kind=INDEX)
    with pytest.raises(MsfkitError, match="is an embedding store, not an index folder"):
        check_output(store, force=True, kind=INDEX)
    with pytest.raises(MsfkitError, match="is a folder; name a file"):
        check_output(store, force=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output(empty, kind=MODEL) == empty  # an empty folder is no one's


def test_a_config_or_manifest_of_another_program_is_not_an_msfkit_folder(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "config.json").write_text(json.dumps({"port": 8080}))
    (app / "manifest.json").write_text(json.dumps({"name": "web app"}))
    assert check_output(app / "report.csv") == app / "report.csv"  # may write beside them
    with pytest.raises(MsfkitError, match="not a model folder; --force only replaces a model folder"):
        check_output(app, force=True, kind=MODEL)


def test_a_dangling_link_counts_as_an_existing_file(tmp_path):
    link = tmp_path / "out.csv"
    link.symlink_to(tmp_path / "nowhere.csv")
    with pytest.raises(MsfkitError, match="already exists"):
        check_output(link)
    assert check_output(link, force=True) == link
