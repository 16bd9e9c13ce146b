"""msfkit.data.inputs: the one rule for walking image folders, used by `msfkit embed` and by training."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from msfkit.data.datasets import image_folder
from msfkit.data.inputs import list_inputs
from msfkit.training.data import open_dataset


def _tree(root):
    files = ["cats/b.png", "cats/a.jpg", "dogs/deep/c.png", ".hidden/x.png", "cats/.y.png", "dogs/notes.txt"]
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".txt"):
            path.write_text("not an image")
        else:
            Image.new("RGB", (8, 8), (len(rel), 0, 0)).save(path)
    return root


def test_embed_and_training_walk_a_folder_alike(tmp_path):
    root = _tree(tmp_path / "data")
    listed = list_inputs([root])
    assert [f.rel for f in listed.files] == ["cats/a.jpg", "cats/b.png", "dogs/deep/c.png"]  # no hidden ones
    assert [f.label for f in listed.files] == ["cats", "cats", "dogs"]
    for dataset in (image_folder(root), open_dataset(str(root))):
        assert dataset.paths == [f.path for f in listed.files]
        assert dataset.classes == ["cats", "dogs"] and list(dataset.labels) == [0, 0, 1]


def test_a_folder_with_loose_files_has_no_labels_for_training(tmp_path):
    root = _tree(tmp_path / "data")
    Image.new("RGB", (8, 8)).save(root / "loose.png")
    listed = list_inputs([root])
    assert [f.label for f in listed.files] == ["cats", "cats", "dogs", None]
    ds = image_folder(root)
    assert ds.classes == [] and np.all(ds.labels == -1)


@pytest.mark.slow
def test_csv_and_parquet_tables_name_files_and_labels(tmp_path, photos_dir, tiny_model_dir):
    import pandas as pd

    import msfkit

    names = sorted(p.name for p in photos_dir.glob("*.jpg"))[:4]
    table = pd.DataFrame({"path": [f"photos/{n}" for n in names], "label": ["x", "y", "", "x"]})
    table.to_csv(tmp_path / "list.csv", index=False)
    table.to_parquet(tmp_path / "list.parquet")
    for name in ("list.csv", "list.parquet"):
        files = list_inputs([tmp_path / name]).files
        assert [f.path for f in files] == [str(photos_dir / n) for n in names]
        assert [f.label for f in files] == ["x", "y", None, "x"]
    store = msfkit.embed(tmp_path / "list.csv", tiny_model_dir, tmp_path / "store", workers=0)
    assert list(store.meta["label"]) == ["x", "y", None, "x"]


def test_a_table_without_a_path_column_is_one_error(tmp_path):
    import pandas as pd
    import pytest

    from msfkit.models.errors import MsfkitError

    pd.DataFrame({"file": ["a.jpg"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(MsfkitError, match=r"t.csv: a table of inputs needs a 'path' column \(has file\)"):
        list_inputs([tmp_path / "t.csv"])


def test_list_and_table_entries_that_climb_out_or_are_absolute_are_error_rows(tmp_path):
    import re

    import pandas as pd
    import pytest

    from msfkit.data.images import BadImageError, decode_image

    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (8, 8)).save(data / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    (data / "picks.txt").write_text(f"a.png\n../outside.png\n{tmp_path / 'outside.png'}\n")
    pd.DataFrame({"path": ["a.png", "../outside.png"]}).to_csv(data / "picks.csv", index=False)
    listing = list_inputs([data / "picks.txt", data / "picks.csv"])
    assert listing.root == data  # the refused entries do not widen the source root
    refused = {
        "picks.csv/../outside.png": "picks.csv: has a '..' part",
        "picks.txt/../outside.png": "picks.txt: has a '..' part",
        f"picks.txt/{tmp_path}/outside.png": "picks.txt: absolute",
    }
    assert [f.rel for f in listing.files] == ["a.png", *sorted(refused)]
    decode_image(listing.files[0].path)
    for f in listing.files[1:]:
        with pytest.raises(BadImageError, match=re.escape(f"unsafe path in the list {refused[f.rel]}")):
            decode_image(f.path)


def test_tables_of_images_list_their_rows_beside_other_inputs(tmp_path, photos_dir):
    """A Parquet table of encoded images and a saved datasets folder list their rows as members; a
    Parquet table of paths (no image column named) stays a table of paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from msfkit.data.tables import TableOptions

    photos = sorted(photos_dir.glob("*.jpg"))
    (tmp_path / "t").mkdir()
    images = pa.table(
        {"jpeg": pa.array([p.read_bytes() for p in photos[:2]], pa.binary()), "label": ["a", "b"]}
    )
    pq.write_table(images, tmp_path / "t" / "images.parquet")
    pq.write_table(pa.table({"path": [f"photos/{photos[2].name}"]}), tmp_path / "paths.parquet")
    listed = list_inputs([tmp_path / "t" / "images.parquet", tmp_path / "paths.parquet", photos[3]])
    assert listed.root == tmp_path
    assert [(f.rel, f.label) for f in listed.files] == [
        (f"photos/{photos[2].name}", None),  # the table of paths names a file
        (f"photos/{photos[3].name}", None),
        ("t/images.parquet/jpeg/000000000", "a"),
        ("t/images.parquet/jpeg/000000001", "b"),
    ]
    named = list_inputs([tmp_path / "paths.parquet"], TableOptions(image_column="path"))
    assert [(f.path, f.rel) for f in named.files] == [
        (f"{tmp_path}/paths.parquet/path/000000000", "paths.parquet/path/000000000")
    ]


def test_a_url_prefix_is_listed_by_the_folder_rule_with_its_url_as_the_root(tmp_path, photo_paths):
    import uuid

    from msfkit.data.storage import locate
    from msfkit.models.errors import MsfkitError

    base = f"memory://{uuid.uuid4().hex}/photos"
    layout = {"cats/a.jpg": photo_paths[0], "b.jpg": photo_paths[1], "cats/.c.jpg": photo_paths[2]}
    for rel, photo in layout.items():
        locate(f"{base}/{rel}").write_bytes(photo.read_bytes())
    locate(f"{base}/notes.txt").write_bytes(b"not an image")
    listing = list_inputs([f"{base}/"])
    assert listing.root == base
    assert [(f.path, f.rel, f.label) for f in listing.files] == [
        (f"{base}/b.jpg", "b.jpg", None),
        (f"{base}/cats/a.jpg", "cats/a.jpg", "cats"),
    ]
    assert list_inputs([f"{base}/cats", f"{base}/b.jpg"]).root == base
    with pytest.raises(MsfkitError, match="^the inputs are in different places"):
        list_inputs([base, tmp_path])
