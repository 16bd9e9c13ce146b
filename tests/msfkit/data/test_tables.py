"""msfkit.data.tables: real Parquet files and `datasets` folders holding real JPEG photos, listed as
cells with their labels (on disk and on a real S3 API, moto in server mode on 127.0.0.1), every cell
name read back (`msfkit.data.cells`) as the photo it was made from."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msfkit.data.cells import read_cell, split_cell
from msfkit.data.storage import locate
from msfkit.data.tables import TableOptions, holds_images, image_column, is_table, table_files, table_rows
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
    return str(path)


def test_rows_list_in_table_order_with_their_labels(tmp_path, photos):
    cells = [{"bytes": b, "path": f"p{i}.jpg"} for i, b in enumerate(photos)]
    labels = ["cat", "dog", None, "cat", "", "dog", "cat"]
    table = _parquet(
        tmp_path / "t.parquet", {"image": pa.array(cells, IMAGE), "label": labels}, row_group_size=3
    )
    assert is_table(table) and table_files(table) == [table]
    rows = table_rows(table, TableOptions())
    assert rows == [(f"image/{i:09d}", label or None) for i, label in enumerate(labels)]
    assert [read_cell(*split_cell(f"{table}/{name}"))[0] for name, _ in rows] == photos


def test_a_binary_column_is_found_as_the_image_column(tmp_path, photos):
    table = _parquet(tmp_path / "t.parquet", {"id": [1, 2], "jpeg": pa.array(photos[:2], pa.binary())})
    assert image_column(table, TableOptions()) == "jpeg"
    assert table_rows(table, TableOptions()) == [(f"jpeg/{i:09d}", None) for i in range(2)]


def test_a_column_of_paths_must_be_named(tmp_path):
    table = _parquet(tmp_path / "t.parquet", {"file": ["a.jpg"], "cls": ["x"]})
    assert image_column(table, TableOptions()) is None
    listed = table_rows(table, TableOptions(image_column="file", label_column="cls"))
    assert listed == [("file/000000000", "x")]


def test_which_tables_listing_reads_as_tables_of_images(tmp_path, photos):
    images = _parquet(tmp_path / "images.parquet", {"image": pa.array(photos[:1], pa.binary())})
    paths = _parquet(tmp_path / "paths.parquet", {"path": ["a.jpg"]})
    (tmp_path / "a.jpg").write_bytes(photos[0])
    assert holds_images(images, TableOptions()) and not holds_images(paths, TableOptions())
    assert holds_images(paths, TableOptions(image_column="path"))  # named: its cells are paths
    assert not holds_images(tmp_path / "a.jpg", TableOptions()) and not holds_images(tmp_path, TableOptions())


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
    assert files == [str(tmp_path / "ds" / f"data-0000{i}-of-00002.arrow") for i in range(2)]
    listed = table_rows(tmp_path / "ds", TableOptions())
    assert listed[0][0] == "data-00000-of-00002.arrow/image/000000000"
    assert [label for _, label in listed] == ["a", "b", "b", "a"]
    assert [read_cell(*split_cell(f"{tmp_path}/ds/{name}"))[0] for name, _ in listed] == photos[:4]
    datasets.DatasetDict({"train": ds, "test": ds.select([3])}).save_to_disk(tmp_path / "dd")
    listed = table_rows(tmp_path / "dd", TableOptions())
    assert [name.split("/", 1)[0] for name, _ in listed] == ["train"] * 4 + ["test"]
    assert listed[0][0] == "train/data-00000-of-00001.arrow/image/000000000"
    assert read_cell(*split_cell(f"{tmp_path}/dd/{listed[-1][0]}"))[0] == photos[3]


def test_a_parquet_written_by_datasets_reads_as_one(tmp_path, photos):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": photos[0], "path": "x.jpg"}], "label": [1]}, features=features
    )
    ds.to_parquet(tmp_path / "t.parquet")
    [(name, label)] = table_rows(tmp_path / "t.parquet", TableOptions())
    assert label == "b" and read_cell(*split_cell(f"{tmp_path}/t.parquet/{name}"))[0] == photos[0]


@pytest.mark.slow
def test_a_remote_parquet_lists_from_its_footer_and_labels(s3_bucket, photos):
    out = io.BytesIO()
    pq.write_table(pa.table({"jpg": pa.array(photos[:4], pa.binary()), "class": ["a", "b", None, "a"]}), out)
    locate(f"s3://{s3_bucket}/t.parquet").write_bytes(out.getvalue())
    table = f"s3://{s3_bucket}/t.parquet"
    assert is_table(table) and table_files(table) == [table]
    listed = table_rows(table, TableOptions(label_column="class"))
    assert listed == [(f"jpg/{i:09d}", label) for i, label in enumerate(["a", "b", None, "a"])]
    assert [read_cell(*split_cell(f"{table}/{name}"))[0] for name, _ in listed] == photos[:4]
    with pytest.raises(MsfkitError, match=rf"^s3://{s3_bucket}/none.parquet: no such table$"):
        table_rows(f"s3://{s3_bucket}/none.parquet", TableOptions())


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
