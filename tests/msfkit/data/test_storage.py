"""msfkit.data.storage: plain paths and fsspec URLs behind one interface, against the real local disk,
fsspec's memory store and a real S3 API on 127.0.0.1 (moto in server mode) through s3fs."""

from __future__ import annotations

import importlib.util
import os
import signal
import uuid

import pytest

from msfkit.data.storage import is_url, locate, parse_storage_options, protocol, use_storage_options
from msfkit.models.errors import MsfkitError


def test_storage_options_nest_dotted_keys_and_read_json_values():
    options = parse_storage_options(
        [
            "anon=true",
            "client_kwargs.endpoint_url=http://127.0.0.1:9000",
            "client_kwargs.region_name=eu-west-1",
            'config_kwargs.retries={"max_attempts": 1}',
            "block_size=1024",
            "profile=dev=2",
        ]
    )
    assert options == {
        "anon": True,
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
        "config_kwargs": {"retries": {"max_attempts": 1}},
        "block_size": 1024,
        "profile": "dev=2",  # only the first '=' splits
    }


@pytest.mark.parametrize("bad", ["anon", "=1", "a..b=1", "a.=1"])
def test_a_storage_option_without_key_and_value_is_one_line(bad):
    with pytest.raises(MsfkitError, match="write KEY=VALUE"):
        parse_storage_options([bad])


def test_a_storage_option_cannot_be_a_value_and_a_group():
    with pytest.raises(MsfkitError, match="as a value and as a group"):
        parse_storage_options(["client_kwargs=1", "client_kwargs.endpoint_url=x"])


def test_urls_and_plain_paths_are_told_apart():
    assert [is_url(t) for t in ("s3://b/k", "memory://x", "file:///tmp/a", "/tmp/a", "photos", "c:/x")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    assert [protocol(t) for t in ("S3://b", "hf://datasets/a/b", "/tmp/a")] == ["s3", "hf", "file"]


@pytest.mark.parametrize("form", ["plain", "file-url"])
def test_a_local_location_writes_by_renaming_into_place(tmp_path, form):
    target = str(tmp_path / "store") if form == "plain" else f"file://{tmp_path}/store"
    store = locate(target)
    assert store.local and store.path == str(tmp_path / "store")
    store.child("emb", "00000.npy").write_bytes(b"vectors")
    store.child("emb", "00000.npy").write_bytes(b"vectors, again")
    assert (tmp_path / "store" / "emb" / "00000.npy").read_bytes() == b"vectors, again"
    assert os.listdir(tmp_path / "store" / "emb") == ["00000.npy"]  # no temporary left beside it
    assert store.listdir() == ["emb"] and store.child("nothing").listdir() == []
    assert store.child("emb", "00000.npy").size() == len(b"vectors, again")


def test_the_memory_store_reads_what_was_written():
    store = locate(f"memory://msfkit-{uuid.uuid4().hex}/store")
    assert not store.local and not store.exists()
    store.child("meta/00001.parquet").write_bytes(b"b")
    store.child("meta/00000.parquet").write_bytes(b"a")
    assert store.child("meta").listdir() == ["00000.parquet", "00001.parquet"]
    assert store.child("meta", "00001.parquet").read_bytes() == b"b"
    with pytest.raises(FileNotFoundError):
        store.child("meta", "00002.parquet").read_bytes()


@pytest.mark.slow
def test_s3_objects_round_trip_through_s3fs(s3_bucket):
    store = locate(f"s3://{s3_bucket}/stores/photos")
    assert not store.exists() and store.listdir() == []
    data = os.urandom(100_000)
    store.child("emb/00000.npy").write_bytes(data)
    assert store.child("emb/00000.npy").read_bytes() == data
    assert store.child("emb/00000.npy").size() == len(data)
    with store.child("emb/00000.npy").open() as f:
        f.seek(99_990)
        assert f.read() == data[-10:]
    assert store.listdir() == ["emb"]


def test_a_listing_sees_what_another_client_wrote_since(s3_bucket):
    """s3fs caches listings per filesystem; a run must see the objects another process committed."""
    reader, writer = locate(f"s3://{s3_bucket}/store"), locate(f"s3://{s3_bucket}/store")
    writer.child("commits/00000.json").write_bytes(b"{}")
    assert reader.child("commits").listdir() == ["00000.json"]  # listed, and cached by s3fs
    assert not reader.child("commits/00001.json").exists()
    writer.child("commits/00001.json").write_bytes(b"{}")
    assert reader.child("commits").listdir() == ["00000.json", "00001.json"]
    assert reader.child("commits/00001.json").exists()


@pytest.mark.slow
def test_storage_options_reach_the_filesystem(s3_bucket, s3_server, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the server is found only through the option
    options = parse_storage_options([f"client_kwargs.endpoint_url={s3_server.endpoint}"])
    store = locate(f"s3://{s3_bucket}/store", options)
    store.child("a").write_bytes(b"1")
    assert locate(f"s3://{s3_bucket}/store", options).child("a").read_bytes() == b"1"


@pytest.mark.slow
def test_options_in_use_reach_filesystems_opened_without_them(s3_bucket, s3_server, monkeypatch, tmp_path):
    """What a command does with --storage-option: every later filesystem of the URL's protocol, in
    this process and in a forked one (a decoding worker), is opened with them."""
    import fsspec.config

    monkeypatch.setattr(fsspec.config, "conf", {})
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    url = f"s3://{s3_bucket}/store/a"
    options = parse_storage_options([f"client_kwargs.endpoint_url={s3_server.endpoint}"])
    use_storage_options(options, [url, str(tmp_path)])
    assert fsspec.config.conf == {"s3": options}  # a plain path has no protocol to configure
    locate(url).write_bytes(b"1")
    pid = os.fork()
    if pid == 0:  # the child: opens its own filesystem, with the options
        signal.alarm(60)  # a child stuck on a lock forked mid-use dies, and the test fails
        os._exit(0 if locate(url).read_bytes() == b"1" else 1)
    assert os.waitpid(pid, 0)[1] == 0


def test_missing_credentials_are_one_line(s3_bucket, monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith("AWS_") and n != "AWS_ENDPOINT_URL"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(MsfkitError, match=rf"^s3://{s3_bucket}/store/emb: no credentials for s3://") as e:
        locate(f"s3://{s3_bucket}/store").child("emb").listdir()
    assert "\n" not in str(e.value)


def test_an_unreachable_endpoint_is_one_line(s3_bucket):
    options = parse_storage_options(
        ["client_kwargs.endpoint_url=http://127.0.0.1:9", "config_kwargs.retries.max_attempts=1"]
    )
    with pytest.raises(MsfkitError, match=r"^s3://b/store/x: cannot reach the storage \(Could not connect"):
        locate("s3://b/store", options).child("x").read_bytes()


def test_writing_into_a_missing_bucket_or_under_a_file_is_one_line(s3_bucket, tmp_path):
    with pytest.raises(
        MsfkitError, match=r"^s3://no-such-bucket/a.npy: cannot write here \(The specified bucket"
    ):
        locate("s3://no-such-bucket/a.npy").write_bytes(b"x")
    (tmp_path / "file").write_text("")
    with pytest.raises(MsfkitError, match=rf"^{tmp_path}/file/a.npy: cannot write here"):
        locate(tmp_path / "file" / "a.npy").write_bytes(b"x")


def test_an_unknown_protocol_is_one_line():
    with pytest.raises(MsfkitError, match=r"^nope://b/x: unknown storage protocol nope://$"):
        locate("nope://b/x")


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
def test_a_protocol_whose_package_is_missing_names_it():
    with pytest.raises(MsfkitError, match=r"^gs://b/x: gs:// needs gcsfs; install it and run again$"):
        locate("gs://b/x")


def test_an_option_the_filesystem_does_not_take_is_one_line(s3_bucket):
    store = locate(f"s3://{s3_bucket}/store", parse_storage_options(["no_such_option=1"]))
    with pytest.raises(
        MsfkitError, match=rf"^s3://{s3_bucket}/store/x: a storage option s3:// does not take"
    ):
        store.child("x").read_bytes()
