"""msfkit.data.remote: real photos in a bucket of a real S3 API (moto in server mode on 127.0.0.1,
through s3fs), walked as a folder and read back without a local copy."""

from __future__ import annotations

import time

import pytest

from msfkit.data.images import decode_image, image_extensions
from msfkit.data.remote import read_image, walk
from msfkit.data.storage import locate
from msfkit.models.errors import MsfkitError


@pytest.fixture
def bucket_photos(s3_bucket, photo_paths) -> str:
    """s3://BUCKET/photos with class sub-folders, a top-level photo, hidden files and a text file."""
    root = locate(f"s3://{s3_bucket}/photos")
    layout = {
        "dogs/b.jpg": photo_paths[1],
        "cats/a.jpg": photo_paths[0],
        "cats/deep/c.JPG": photo_paths[2],
        "top.jpg": photo_paths[3],
        ".hidden/x.jpg": photo_paths[4],
        "cats/.y.jpg": photo_paths[5],
    }
    for name, path in layout.items():
        root.child(name).write_bytes(path.read_bytes())
    root.child("cats/notes.txt").write_bytes(b"not an image")
    return f"s3://{s3_bucket}/photos"


def test_a_prefix_is_walked_as_a_folder(bucket_photos):
    found = walk(locate(bucket_photos), image_extensions())
    assert found == [
        (f"{bucket_photos}/cats/a.jpg", "cats"),
        (f"{bucket_photos}/cats/deep/c.JPG", "cats"),
        (f"{bucket_photos}/dogs/b.jpg", "dogs"),
        (f"{bucket_photos}/top.jpg", None),
    ]


@pytest.mark.slow
def test_an_object_reads_back_whole_with_its_time(bucket_photos, photo_paths):
    started = time.time()
    data, mtime = read_image(locate(bucket_photos).child("dogs/b.jpg"))
    assert data == photo_paths[1].read_bytes()
    assert abs(mtime - started) < 120  # moto stamps the PUT a moment ago
    assert decode_image(data).image.size == decode_image(photo_paths[1]).image.size
    with pytest.raises(FileNotFoundError):
        read_image(locate(bucket_photos).child("dogs/none.jpg"))


def test_a_missing_prefix_is_one_line(s3_bucket):
    with pytest.raises(MsfkitError, match=rf"^s3://{s3_bucket}/nothing: no such folder or prefix$"):
        walk(locate(f"s3://{s3_bucket}/nothing"), image_extensions())


def test_an_empty_but_existing_folder_lists_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert walk(locate(f"file://{tmp_path}/empty"), image_extensions()) == []


def test_a_hub_repo_is_walked_and_read_through_hf_urls(local_hub, photo_paths):
    """hf:// goes through huggingface_hub's own filesystem, here against the Hub-compatible test server."""
    local_hub.create_repo("org/photos")
    local_hub.commit(
        "org/photos", {"cats/a.jpg": photo_paths[0].read_bytes(), "b.jpg": photo_paths[1].read_bytes()}
    )
    root = locate("hf://org/photos")
    assert walk(root, image_extensions()) == [
        ("hf://org/photos/b.jpg", None),
        ("hf://org/photos/cats/a.jpg", "cats"),
    ]
    # (read_image's time comes from the Hub's paths-info API, which the test server does not answer)
    assert root.child("cats/a.jpg").read_bytes() == photo_paths[0].read_bytes()
