"""msfkit.data.tables: real Parquet files and `datasets` folders holding real JPEG photos (as encoded
bytes, `{"bytes", "path"}` structs or paths), listed as cells and read back byte for byte."""

from __future__ import annotations

import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msfkit.data.images import decode_image
from msfkit.data.tables import (
    CellError,
    TableOptions,
    image_column,
    is_table,
    read_cell,
    split_cell,
    table_files,
    table_rows,
)
from msfkit.models.errors import MsfkitError

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # what datasets.Image writes


@pytest.fixture
def photos(photo_paths) -> list[bytes]:
    return [p.read_bytes() for p in photo_paths[:7]]


def _parquet(path, columns: dict, row_group_size: int | None = None, metadata=None):
    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_struct_cells_list_in_table_order_and_read_back_as_the_photos(tmp_path, photos):
    cells = [{"bytes": b, "path": f"p{i}.jpg"} for i, b in enumerate(photos)]
    labels = ["cat", "dog", None, "cat", "", "dog", "cat"]
    table = _parquet(
        tmp_path / "t.parquet", {"image": pa.array(cells, IMAGE), "label": labels}, row_group_size=3
    )
    assert is_table(table) and table_files(table) == [table]
    rows = table_rows(table, TableOptions())
    assert rows == [(f"{table}/image/{i:09d}", label or None) for i, label in enumerate(labels)]
    for name, _ in reversed(rows):  # across the three row groups, backwards
        where = split_cell(name)
        assert where is not None and where[:2] == (table, "image")
        data, mtime = read_cell(*where)
        assert data == photos[where[2]] and mtime == os.stat(table).st_mtime
    decoded = decode_image(read_cell(table, "image", 5)[0])
    assert (decoded.width, decoded.height) == decode_image(photos[5]).image.size


def test_a_binary_column_is_found_as_the_image_column(tmp_path, photos):
    table = _parquet(tmp_path / "t.parquet", {"id": [1, 2], "jpeg": pa.array(photos[:2], pa.binary())})
    assert image_column(table, TableOptions()) == "jpeg"
    assert table_rows(table, TableOptions()) == [(f"{table}/jpeg/{i:09d}", None) for i in range(2)]
    assert read_cell(table, "jpeg", 1)[0] == photos[1]


def test_path_cells_read_files_beside_the_table(tmp_path, photo_paths):
    (tmp_path / "img").mkdir()
    for p in photo_paths[:2]:
        shutil.copy(p, tmp_path / "img" / p.name)
    names = [f"img/{p.name}" for p in photo_paths[:2]]
    table = _parquet(tmp_path / "t.parquet", {"file": names, "cls": ["a", "b"]})
    opts = TableOptions(image_column="file", label_column="cls")
    assert table_rows(table, opts) == [(f"{table}/file/000000000", "a"), (f"{table}/file/000000001", "b")]
    data, mtime = read_cell(table, "file", 1)
    assert data == photo_paths[1].read_bytes() and mtime == os.stat(tmp_path / names[1]).st_mtime


def test_a_struct_without_bytes_reads_its_path(tmp_path, photo_paths):
    shutil.copy(photo_paths[0], tmp_path / "a.jpg")
    table = _parquet(tmp_path / "t.parquet", {"image": pa.array([{"bytes": None, "path": "a.jpg"}], IMAGE)})
    assert read_cell(table, "image", 0)[0] == photo_paths[0].read_bytes()


def test_paths_that_leave_the_tables_folder_are_refused(tmp_path, photo_paths):
    inside, outside = tmp_path / "data", tmp_path / "secret"
    inside.mkdir(), outside.mkdir()
    shutil.copy(photo_paths[0], outside / "x.jpg")
    (inside / "link.jpg").symlink_to(outside / "x.jpg")
    paths = [
        str(outside / "x.jpg"),
        "../secret/x.jpg",
        "a/../../secret/x.jpg",
        "link.jpg",
        "missing.jpg",
        None,
    ]
    table = _parquet(
        inside / "t.parquet", {"image": pa.array([{"bytes": None, "path": p} for p in paths], IMAGE)}
    )
    reasons = []
    for row in range(len(paths)):
        with pytest.raises(CellError) as e:
            read_cell(table, "image", row)
        reasons.append(str(e.value))
    assert reasons == [
        f"unsafe path in the table t.parquet: {str(outside / 'x.jpg')!r} leaves its folder",
        "unsafe path in the table t.parquet: '../secret/x.jpg' leaves its folder",
        "unsafe path in the table t.parquet: 'a/../../secret/x.jpg' leaves its folder",
        "unsafe path in the table t.parquet: 'link.jpg' resolves outside its folder",
        "no such file beside the table: missing.jpg",
        "empty image cell",
    ]


def test_a_cell_past_the_end_is_a_reason_not_a_crash(tmp_path, photos):
    table = _parquet(tmp_path / "t.parquet", {"image": pa.array(photos[:1], pa.binary())})
    with pytest.raises(CellError, match="no row 1 in column 'image'"):
        read_cell(table, "image", 1)


def test_class_indices_read_as_the_names_datasets_records(tmp_path, photos):
    meta = {
        b"huggingface": b'{"info": {"features": {"label": {"names": ["cat", "dog"], "_type": "ClassLabel"}}}}'
    }
    table = _parquet(
        tmp_path / "t.parquet",
        {"image": pa.array(photos[:3], pa.binary()), "label": [1, 0, None]},
        None,
        meta,
    )
    assert [label for _, label in table_rows(table, TableOptions())] == ["dog", "cat", None]


def test_a_saved_datasets_folder_lists_its_arrow_files_and_splits(tmp_path, photos):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    rows = {"image": [{"bytes": b, "path": None} for b in photos[:4]], "label": [0, 1, 1, 0]}
    ds = datasets.Dataset.from_dict(rows, features=features)
    ds.save_to_disk(tmp_path / "ds", num_shards=2)
    assert is_table(tmp_path / "ds")
    files = table_files(tmp_path / "ds")
    assert [f.name for f in files] == ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]
    listed = table_rows(tmp_path / "ds", TableOptions())
    assert [label for _, label in listed] == ["a", "b", "b", "a"]
    assert [read_cell(*split_cell(name))[0] for name, _ in listed] == photos[:4]
    datasets.DatasetDict({"train": ds, "test": ds.select([3])}).save_to_disk(tmp_path / "dd")
    listed = table_rows(tmp_path / "dd", TableOptions())
    assert [name.split("/dd/")[1].split("/")[0] for name, _ in listed] == ["train"] * 4 + ["test"]
    assert read_cell(*split_cell(listed[-1][0]))[0] == photos[3]


def test_a_parquet_written_by_datasets_reads_as_one(tmp_path, photos):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": photos[0], "path": "x.jpg"}], "label": [1]}, features=features
    )
    ds.to_parquet(tmp_path / "t.parquet")
    [(name, label)] = table_rows(tmp_path / "t.parquet", TableOptions())
    assert label == "b" and read_cell(*split_cell(name))[0] == photos[0]


@pytest.mark.parametrize(
    ("columns", "opts", "message"),
    [
        ({"path": ["a.jpg"]}, TableOptions(), r"no column holds images; name it \(--image-column\)$"),
        (
            {"a": pa.array([b"x"], pa.binary()), "b": pa.array([b"y"], pa.binary())},
            TableOptions(),
            r"several columns hold images \(a, b\); name one$",
        ),
        ({"path": ["a.jpg"]}, TableOptions(image_column="img"), r"no column 'img' \(has path\)$"),
        ({"n": [1]}, TableOptions(image_column="n"), r"column 'n' holds no images \(encoded bytes"),
        (
            {"path": ["a.jpg"]},
            TableOptions(image_column="path", label_column="y"),
            r"no label column 'y' \(has path\)$",
        ),
    ],
)
def test_a_table_without_usable_columns_is_one_line(tmp_path, columns, opts, message):
    table = _parquet(tmp_path / "t.parquet", columns)
    with pytest.raises(MsfkitError, match=rf"^{tmp_path}/t.parquet: {message}"):
        table_rows(table, opts)


def test_a_damaged_table_or_folder_is_one_line(tmp_path):
    (tmp_path / "t.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(MsfkitError, match=r"t.parquet: unreadable table"):
        table_rows(tmp_path / "t.parquet", TableOptions())
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "state.json").write_text('{"_data_files": [{"filename": "../../etc/x.arrow"}]}')
    with pytest.raises(MsfkitError, match=r"state.json: its '_data_files' is not a list of file names"):
        table_files(tmp_path / "ds")


def test_only_cells_of_tables_on_disk_are_split(tmp_path, photos):
    table = _parquet(tmp_path / "t.parquet", {"image": pa.array(photos[:1], pa.binary())})
    assert split_cell(f"{table}/image/000000000") == (table, "image", 0)
    assert split_cell(f"{table}/image/0") is None  # not a name listing gives
    assert split_cell(f"{tmp_path}/other.parquet/image/000000000") is None
    assert split_cell(f"{tmp_path}/photo.jpg") is None
