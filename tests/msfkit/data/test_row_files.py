"""msfkit.data.row_files: a row's file is read only while it resolves under its root and is the file
that was embedded (its size and mtime as the metadata recorded them)."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from msfkit.data.paths import UnsafePath
from msfkit.data.row_files import RowFile, check_row_file, read_row_file


def _row(root, rel, *, mtime_ns=True) -> RowFile:
    """The RowFile the metadata would hold for root/rel as it is now."""
    st = os.stat(root / rel)
    return RowFile(str(root), rel, st.st_size, st.st_mtime, st.st_mtime_ns if mtime_ns else None)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "data" / "cats").mkdir(parents=True)
    (tmp_path / "data" / "cats" / "a.jpg").write_bytes(b"embedded bytes")
    (tmp_path / "secret.jpg").write_bytes(b"a file outside the root")
    return tmp_path / "data"


def _refused(f: RowFile, says: str) -> None:
    for check in (read_row_file, check_row_file):
        with pytest.raises(UnsafePath, match=says):
            check(f)


def test_the_embedded_file_is_read(root):
    f = _row(root, "cats/a.jpg")
    assert read_row_file(f) == b"embedded bytes"
    check_row_file(f)
    assert read_row_file(_row(root, "cats/a.jpg", mtime_ns=False)) == b"embedded bytes"  # older shards


def test_a_symlink_swapped_in_that_leaves_the_root_is_refused(root):
    f = _row(root, "cats/a.jpg")
    (root / "cats" / "a.jpg").unlink()
    (root / "cats" / "a.jpg").symlink_to(root.parent / "secret.jpg")
    _refused(f, "resolves outside the source root")
    (root / "cats" / "a.jpg").unlink()
    (root / "cats").rmdir()
    (root / "cats").symlink_to(root.parent)  # a folder swapped for a link out
    (root.parent / "a.jpg").write_bytes(b"embedded bytes")
    _refused(f, "resolves outside the source root")


def test_a_changed_or_gone_file_is_refused(root):
    f = _row(root, "cats/a.jpg")
    (root / "cats" / "a.jpg").write_bytes(b"other bytes!!!")  # same size, new mtime
    os.utime(root / "cats" / "a.jpg", ns=(0, f.mtime_ns + 1))
    _refused(f, "changed since it was embedded")
    (root / "cats" / "a.jpg").unlink()
    _refused(f, "the file is gone")


def test_a_symlink_inside_the_root_is_followed(root):
    (root / "link.jpg").symlink_to(root / "cats" / "a.jpg")
    st = os.stat(root / "cats" / "a.jpg")
    assert (
        read_row_file(RowFile(str(root), "link.jpg", st.st_size, st.st_mtime, st.st_mtime_ns))
        == b"embedded bytes"
    )


def test_an_edited_row_or_root_is_refused_by_name(root):
    f = _row(root, "cats/a.jpg")
    _refused(RowFile(f.root, "../secret.jpg", f.bytes, f.mtime, f.mtime_ns), "is unsafe")
    _refused(RowFile("data", "cats/a.jpg", f.bytes, f.mtime, f.mtime_ns), "not an absolute path")


def test_a_tar_member_is_read_from_its_archive_under_the_root(root):
    with tarfile.open(root / "shard.tar", "w") as tar:
        info = tarfile.TarInfo("m.jpg")
        info.size, info.mtime = 5, 1_700_000_000
        tar.addfile(info, io.BytesIO(b"jpeg!"))
    f = RowFile(str(root), "shard.tar/m.jpg", 5, 1_700_000_000.0, 1_700_000_000 * 10**9)
    assert read_row_file(f) == b"jpeg!"
    _refused(RowFile(f.root, f.rel, 6, f.mtime, f.mtime_ns), "changed since it was embedded")
    (root.parent / "shard.tar").write_bytes((root / "shard.tar").read_bytes())
    (root / "shard.tar").unlink()
    (root / "shard.tar").symlink_to(root.parent / "shard.tar")  # the archive swapped for a link out
    _refused(f, "resolves outside the source root")


def test_an_object_under_a_url_root_is_read_while_it_is_the_one_embedded(s3_bucket):
    from msfkit.data.storage import locate

    root = f"s3://{s3_bucket}/photos"
    where = locate(f"{root}/cats/a.jpg")
    where.write_bytes(b"embedded bytes")
    mtime = where.modified()
    f = RowFile(root, "cats/a.jpg", 14, mtime, int(mtime * 1_000_000_000))
    assert read_row_file(f) == b"embedded bytes"
    check_row_file(f)
    _refused(RowFile(root, "../secret.jpg", 14, mtime, f.mtime_ns), "is unsafe")
    _refused(RowFile(root, "cats/b.jpg", 14, mtime, f.mtime_ns), "the object is gone")
    _refused(RowFile(root, "cats/a.jpg", 14, mtime - 1, f.mtime_ns - 10**9), "changed since it was embedded")
    where.write_bytes(b"replaced since then")
    _refused(f, "changed since it was embedded")
