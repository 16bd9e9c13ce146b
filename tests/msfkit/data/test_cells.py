"""msfkit.data.cells: one image cell of a real Parquet or .arrow table holding real JPEG photos (encoded
bytes, `{"bytes", "path"}` structs or paths), read back byte for byte, on disk and from a real S3 API
(moto in server mode on 127.0.0.1, through s3fs)."""

from __future__ import annotations

import io
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msfkit.data.cells import CellError, read_cell, split_cell
from msfkit.data.images import decode_image
from msfkit.data.storage import locate

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # what datasets.Image writes


@pytest.fixture
def photos(photo_paths) -> list[bytes]:
    return [p.read_bytes() for p in photo_paths[:7]]


def _parquet(path, columns: dict, row_group_size: int | None = None) -> str:
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return str(path)


def test_struct_cells_read_back_as_the_photos_across_row_groups(tmp_path, photos):
    cells = [{"bytes": b, "path": f"p{i}.jpg"} for i, b in enumerate(photos)]
    table = _parquet(tmp_path / "t.parquet", {"image": pa.array(cells, IMAGE)}, row_group_size=3)
    for row in reversed(range(len(photos))):  # across the three row groups, backwards
        where = split_cell(f"{table}/image/{row:09d}")
        assert where == (table, "image", row)
        data, mtime = read_cell(*where)
        assert data == photos[row] and mtime == os.stat(table).st_mtime
    decoded = decode_image(read_cell(table, "image", 5)[0])
    assert (decoded.width, decoded.height) == decode_image(photos[5]).image.size


def test_binary_cells_read_back(tmp_path, photos):
    table = _parquet(tmp_path / "t.parquet", {"jpeg": pa.array(photos[:2], pa.binary())})
    assert read_cell(table, "jpeg", 1)[0] == photos[1]


def test_an_arrow_file_as_datasets_writes_it_is_read_memory_mapped(tmp_path, photos):
    path = tmp_path / "data-00000-of-00001.arrow"
    table = pa.table({"image": pa.array([{"bytes": b, "path": None} for b in photos[:3]], IMAGE)})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=2)
    assert [read_cell(str(path), "image", row)[0] for row in range(3)] == photos[:3]


def test_path_cells_read_files_beside_the_table(tmp_path, photo_paths):
    (tmp_path / "img").mkdir()
    shutil.copy(photo_paths[1], tmp_path / "img" / "b.jpg")
    shutil.copy(photo_paths[0], tmp_path / "a.jpg")
    cells = {"file": ["img/b.jpg"], "image": pa.array([{"bytes": None, "path": "a.jpg"}], IMAGE)}
    table = _parquet(tmp_path / "t.parquet", cells)
    data, mtime = read_cell(table, "file", 0)
    assert data == photo_paths[1].read_bytes() and mtime == os.stat(tmp_path / "img" / "b.jpg").st_mtime
    assert read_cell(table, "image", 0)[0] == photo_paths[0].read_bytes()  # a struct without bytes


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
        f"unsafe path in the table t.parquet: absolute ({str(outside / 'x.jpg')!r})",
        "unsafe path in the table t.parquet: has a '..' part ('../secret/x.jpg')",
        "unsafe path in the table t.parquet: has a '..' part ('a/../../secret/x.jpg')",
        "unsafe path in the table t.parquet: 'link.jpg' resolves outside its folder",
        "no such file beside the table: missing.jpg",
        "empty image cell",
    ]


def test_a_cell_past_the_end_is_a_reason_not_a_crash(tmp_path, photos):
    table = _parquet(tmp_path / "t.parquet", {"image": pa.array(photos[:1], pa.binary())})
    with pytest.raises(CellError, match="no row 1 in column 'image'"):
        read_cell(table, "image", 1)
    with pytest.raises(CellError, match="no row 0 in column 'other'"):
        read_cell(table, "other", 0)


def test_only_cell_names_are_split(tmp_path, photos):
    table = _parquet(tmp_path / "t.parquet", {"image": pa.array(photos[:1], pa.binary())})
    assert split_cell(f"{table}/image/000000000") == (table, "image", 0)
    assert split_cell(f"{table}/image/0") is None  # not a name listing gives
    assert split_cell(f"{tmp_path}/other.parquet/image/000000000") is None  # no such table on disk
    assert split_cell(f"{tmp_path}/photo.jpg") is None
    assert split_cell("s3://b/t.parquet/image/000000012") == ("s3://b/t.parquet", "image", 12)


@pytest.mark.slow
def test_a_remote_parquets_cells_and_the_files_beside_it_are_read(s3_bucket, photo_paths, photos):
    root = locate(f"s3://{s3_bucket}/tables")
    cells = [{"bytes": b, "path": None} for b in photos[:5]] + [{"bytes": None, "path": "img/b.jpg"}]
    cells.append({"bytes": None, "path": "../outside.jpg"})
    out = io.BytesIO()
    pq.write_table(pa.table({"image": pa.array(cells, IMAGE)}), out, row_group_size=2)
    root.child("t.parquet").write_bytes(out.getvalue())
    root.child("img/b.jpg").write_bytes(photo_paths[1].read_bytes())
    table = f"s3://{s3_bucket}/tables/t.parquet"
    assert [read_cell(*split_cell(f"{table}/image/{row:09d}"))[0] for row in range(5)] == photos[:5]
    assert read_cell(table, "image", 5)[0] == photo_paths[1].read_bytes()
    with pytest.raises(CellError, match=r"has a '..' part \('../outside.jpg'\)"):
        read_cell(table, "image", 6)
