"""Index folders at URLs (msfkit.index.writing.upload_folder, msfkit.index.folder.pull_folder), against
a real S3 API (moto in server mode on 127.0.0.1, through s3fs): built locally and uploaded index.json
last, searched from a local copy pulled again only when index.json changed, a cut-short upload is no
index, and what the output guard refuses at a URL."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from msfkit.data.remote import open_url
from msfkit.index import add_to_index, build_index, open_folder
from msfkit.index.folder import INFO_FILE
from msfkit.models.errors import MsfkitError
from msfkit.outputs import INDEX, check_not_inside, check_output
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

D = 16


X = clustered_vectors(600, D, clusters=6, seed=3)


@pytest.fixture
def stores(tmp_path):
    a = write_vector_store(tmp_path / "a", X[:400], prefix="a")
    return a, write_vector_store(tmp_path / "b", X[400:], prefix="b")


def test_an_index_at_a_url_answers_as_the_local_one(stores, tmp_path, s3_bucket):
    url = f"s3://{s3_bucket}/indexes/photos"
    local = build_index(stores[0], tmp_path / "ix", kind="ivf", memory="1MB", on_disk=True)
    remote = build_index(stores[0], url, kind="ivf", memory="1MB", on_disk=True)
    assert remote["factory"] == local["factory"] and remote["storage"] == "disk"
    assert sorted(open_url(url).find()) == sorted([INFO_FILE, *remote["files"]])

    queries = clustered_vectors(20, D, clusters=6, seed=9)
    want = open_folder(tmp_path / "ix").search_vectors(queries, k=5)
    opened = open_folder(url)
    assert opened.url == url and opened.where == url
    got = opened.search_vectors(queries, k=5)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])

    add_to_index(url, stores[1])  # pulled, added to, uploaded again: a reader sees the new count
    assert open_folder(url).info["count"] == 600
    shutil.rmtree(stores[1])
    write_vector_store(stores[1], X[400:], shard_rows=50, prefix="b")  # the same rows, cut otherwise
    with pytest.raises(MsfkitError, match=rf"^index {url} is out of date with .*-o {url} --force$"):
        open_folder(url)
    assert json.loads(open_url(url).child(INFO_FILE).read_bytes())["count"] == 600


def test_an_upload_cut_short_before_index_json_is_no_index(stores, s3_bucket):
    url = f"s3://{s3_bucket}/ix"
    build_index(stores[0], url, kind="flat")
    open_folder(url)  # pulled into the cache once
    open_url(url).child(INFO_FILE).remove()  # what a killed upload leaves: every file but the commit
    with pytest.raises(MsfkitError, match=rf"^s3://{s3_bucket}/ix: no index here \(no index.json\)$"):
        open_folder(url)
    with pytest.raises(MsfkitError, match="already exists; remove it or pass --force"):
        build_index(stores[0], url, kind="flat")
    build_index(stores[0], url, kind="flat", overwrite=True)  # the leftovers are an index's own files
    assert open_folder(url).info["count"] == 400


def test_the_cached_copy_is_pulled_again_when_index_json_changed(stores, s3_bucket):
    url = f"s3://{s3_bucket}/ix"
    build_index(stores[0], url, kind="flat")
    first = open_folder(url)
    build_index(stores[1], url, kind="flat", overwrite=True)
    second = open_folder(url)
    assert second.path == first.path and (len(first), len(second)) == (400, 200)
    faiss_object = open_url(url).child("index.faiss")
    faiss_object.write_bytes(faiss_object.read_bytes()[:-8])  # another file under the same index.json
    (second.path / INFO_FILE).write_text("{}")  # and a cache that no longer matches: pulled again
    with pytest.raises(MsfkitError, match="index.faiss: does not belong to this index.json"):
        open_folder(url)


def test_outputs_at_a_url_replace_only_an_index(stores, s3_bucket):
    base = f"s3://{s3_bucket}"
    open_url(f"{base}/mine/thesis.tex").write_bytes(b"years of work")
    with pytest.raises(MsfkitError, match="already exists; remove it or pass --force"):
        check_output(f"{base}/mine", kind=INDEX)
    with pytest.raises(MsfkitError, match="not an msfkit index; --force only replaces an index"):
        build_index(stores[0], f"{base}/mine", kind="flat", overwrite=True)
    assert open_url(f"{base}/mine").find() == ["thesis.tex"]
    build_index(stores[0], f"{base}/ix", kind="flat")
    with pytest.raises(MsfkitError, match="inside an index folder"):
        check_output(f"{base}/ix/inner", kind=INDEX)
    with pytest.raises(MsfkitError, match="inside an index folder"):
        check_not_inside(f"{base}/ix/store")  # embed -o: never a store inside an index
    with pytest.raises(MsfkitError, match="to a local path only"):
        check_output(f"{base}/results.csv")
    assert check_output(f"{base}/ix", force=True, kind=INDEX) == f"{base}/ix"
    with pytest.raises(MsfkitError, match=f"^s3://{s3_bucket}-none/ix: no such bucket {s3_bucket}-none$"):
        build_index(stores[0], f"s3://{s3_bucket}-none/ix", kind="flat")
    with pytest.raises(MsfkitError, match="^nope://b/ix: unknown storage protocol nope://$"):
        build_index(stores[0], "nope://b/ix", kind="flat")
    with pytest.raises(MsfkitError, match="^s3://: name a bucket and a prefix in it"):
        check_output("s3://", kind=INDEX)
    with pytest.raises(MsfkitError, match=f"^s3:///{s3_bucket}-none: no such bucket {s3_bucket}-none$"):
        build_index(stores[0], f"s3:///{s3_bucket}-none", kind="flat")
