# ruff: noqa: E501 - member lists read best on one line
"""msfkit.data.archives: tar archives and webdataset shards as inputs, member by member."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

import msfkit
from msfkit.data.archives import archives
from msfkit.data.images import BadImageError, decode_image
from msfkit.data.inputs import list_inputs
from msfkit.models.errors import MsfkitError


def _shard(path, photo_paths, labels, extra=()):
    """A webdataset shard: KEY.jpg + KEY.cls per sample (plus `extra` (name, bytes) members)."""
    with tarfile.open(path, "w") as tar:
        for i, (photo, label) in enumerate(zip(photo_paths, labels, strict=True)):
            for name, data in ((f"s{i:03d}.jpg", photo.read_bytes()), (f"s{i:03d}.cls", label.encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for name, data in extra:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_braces_expand_like_webdataset():
    assert archives("d/train-{000..002}.tar") == ["d/train-000.tar", "d/train-001.tar", "d/train-002.tar"]
    assert archives("{a,b}-{1..2}.tar") == ["a-1.tar", "a-2.tar", "b-1.tar", "b-2.tar"]


@pytest.mark.slow
def test_shards_embed_like_the_same_files_with_their_labels(tmp_path, photo_paths, tiny_model_dir):
    (tmp_path / "shards").mkdir()
    _shard(tmp_path / "shards" / "train-0.tar", photo_paths[:3], ["cat", "dog", "cat"])
    _shard(
        tmp_path / "shards" / "train-1.tar", photo_paths[3:5], ["dog", "cat"], extra=[("bad.jpg", b"nope")]
    )
    files = list_inputs([str(tmp_path / "shards" / "train-{0..1}.tar")]).files
    assert [f.rel for f in files] == ["train-0.tar/s000.jpg", "train-0.tar/s001.jpg", "train-0.tar/s002.jpg",
                                      "train-1.tar/bad.jpg", "train-1.tar/s000.jpg", "train-1.tar/s001.jpg"]  # fmt: skip
    assert [f.label for f in files] == ["cat", "dog", "cat", None, "dog", "cat"]

    store = msfkit.embed(
        str(tmp_path / "shards" / "train-{0..1}.tar"), tiny_model_dir, tmp_path / "store", workers=2
    )
    assert store.run.embedded == 5 and list(store.errors["path"]) == ["train-1.tar/bad.jpg"]
    encoder = msfkit.load(tiny_model_dir)
    direct = encoder.embed([Image.open(p) for p in photo_paths[:5]])
    assert np.abs(store.vectors - direct).max() <= 1e-6
    assert decode_image(store.absolute_paths()[0]).bytes == photo_paths[0].stat().st_size  # paths still open

    _shard(tmp_path / "shards" / "train-2.tar", photo_paths[5:7], ["dog", "dog"])
    grown = msfkit.embed(
        str(tmp_path / "shards" / "train-{0..2}.tar"), tiny_model_dir, tmp_path / "store", workers=0
    )
    assert (grown.run.embedded, grown.run.skipped) == (2, 6)  # only the new members


@pytest.mark.parametrize(("name", "what"), [("x.tar.gz", "a gzip-compressed tar"), ("x.zip", "a zip archive"),
                                            ("x.tgz", "a gzip-compressed tar")])  # fmt: skip
def test_an_archive_type_it_cannot_read_is_one_honest_line(tmp_path, name, what):
    path = tmp_path / name
    if name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("a.jpg", b"x")
    else:
        with tarfile.open(path, "w:gz") as tar:
            tar.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))
    with pytest.raises(MsfkitError, match=f"{name}: {what}, which msfkit does not read"):
        list_inputs([path])
    with pytest.raises(MsfkitError, match="not a plain tar archive"):
        list_inputs([(tmp_path / "fake.tar").write_text("not a tar") and tmp_path / "fake.tar"])


def _tar(path, members, fmt=tarfile.GNU_FORMAT):
    """A tar of (name, bytes or (type, linkname)) members."""
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, what in members:
            info = tarfile.TarInfo(name)
            if isinstance(what, bytes):
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
            else:
                info.type, info.linkname = what
                tar.addfile(info)
    return path


def test_member_names_are_listed_clean_and_read_unsafe_ones_as_their_reason(tmp_path):
    from msfkit.data.archives import MemberError, members, read_member

    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    shard = _tar(tmp_path / "s.tar", [("./a.jpg", jpeg.getvalue()), ("../up.jpg", b"x"), ("/abs.jpg", b"x"),
                                      ("twin.jpg", (tarfile.LNKTYPE, "./a.jpg")), ("gone.jpg", (tarfile.LNKTYPE, "nope.jpg")),
                                      ("sym.jpg", (tarfile.SYMTYPE, "a.jpg"))])  # fmt: skip
    names = [name for name, _ in members(shard, frozenset({".jpg"}))]
    assert names == ["../up.jpg", "/abs.jpg", "a.jpg", "gone.jpg", "sym.jpg", "twin.jpg"]
    assert read_member(shard, "a.jpg")[0] == read_member(shard, "twin.jpg")[0] == jpeg.getvalue()
    for name, reason in [("../up.jpg", "unsafe member name: has a '..' part"), ("/abs.jpg", "unsafe member name: absolute"),
                         ("sym.jpg", "a symbolic link member (not followed)"),
                         ("gone.jpg", "a hard link to 'nope.jpg', which is not a readable earlier member")]:  # fmt: skip
        with pytest.raises(MemberError, match=re.escape(reason)):
            read_member(shard, name)
    assert decode_image(f"{shard}/a.jpg").width == 8  # './a.jpg' opens by its clean name
    with pytest.raises(BadImageError, match="unsafe member name: absolute"):
        decode_image(f"{shard}//abs.jpg")


@pytest.mark.parametrize(("keep", "junk", "says"), [(100, False, "ends inside the header of member 3"),
                                                     (0, False, "ends after 2 members without the end-of-archive blocks"),
                                                     (512, True, "has a damaged header after 2 members")])  # fmt: skip
def test_a_tar_cut_or_damaged_after_a_member_is_one_error_not_a_shorter_archive(tmp_path, keep, junk, says):
    whole = _tar(
        tmp_path / "whole.tar", [(f"m{i}.jpg", b"x" * 600) for i in range(4)], fmt=tarfile.USTAR_FORMAT
    )
    data = whole.read_bytes()
    end = 2 * (512 + 1024)  # two members: a header and two data blocks each
    cut = data[:end] + b"\x07" * keep + data[end + keep :] if junk else data[: end + keep]
    (tmp_path / "cut.tar").write_bytes(cut)
    with pytest.raises(MsfkitError, match=re.escape(f"cut.tar: truncated or damaged tar: it {says}")):
        list_inputs([tmp_path / "cut.tar"])
    assert len(list_inputs([whole]).files) == 4


def test_a_tar_at_a_url_is_listed_and_read_by_ranges_like_the_same_file(tmp_path, s3_bucket, photo_paths):
    from msfkit.data.archives import MemberError, members, read_member, split_member
    from msfkit.data.storage import locate

    shard = _shard(tmp_path / "s.tar", photo_paths[:2], ["cat", "dog"], extra=[("../up.jpg", b"x")])
    url = f"s3://{s3_bucket}/shards/s.tar"
    locate(url).write_bytes(shard.read_bytes())
    listed = members(url, frozenset({".jpg"}))
    assert (
        listed
        == members(shard, frozenset({".jpg"}))
        == [("../up.jpg", None), ("s000.jpg", "cat"), ("s001.jpg", "dog")]
    )
    assert split_member(f"{url}/s001.jpg") == (url, "s001.jpg")
    assert read_member(url, "s001.jpg") == read_member(shard, "s001.jpg")
    assert decode_image(f"{url}/s000.jpg").width == decode_image(photo_paths[0]).width
    with pytest.raises(MemberError, match=re.escape("unsafe member name: has a '..' part")):
        read_member(url, "../up.jpg")
    (tmp_path / "cut.tar").write_bytes(shard.read_bytes()[:1500])  # cut inside a member's data
    locate(url).write_bytes((tmp_path / "cut.tar").read_bytes())  # rewritten: indexed again
    for where in (url, tmp_path / "cut.tar"):  # the same one line as on disk
        with pytest.raises(
            MsfkitError, match=re.escape(f"{where}: not a plain tar archive msfkit can read (unexpected end")
        ):
            members(where, frozenset({".jpg"}))
    with pytest.raises(MsfkitError, match=re.escape(f"s3://{s3_bucket}/none.tar: no such archive")):
        members(f"s3://{s3_bucket}/none.tar", frozenset({".jpg"}))


@pytest.mark.slow
def test_shards_at_a_url_embed_to_the_store_of_the_same_local_shards(
    tmp_path, s3_bucket, photo_paths, tiny_model_dir
):
    from msfkit.data.storage import locate

    (tmp_path / "shards").mkdir()
    for i, photos in enumerate((photo_paths[:2], photo_paths[2:3])):
        shard = _shard(
            tmp_path / "shards" / f"train-{i}.tar",
            photos,
            ["cat", "dog"][: len(photos)],
            extra=[("../up.jpg", b"x")],
        )
        locate(f"s3://{s3_bucket}/shards/train-{i}.tar").write_bytes(shard.read_bytes())
    local = msfkit.embed(
        str(tmp_path / "shards" / "train-{0..1}.tar"), tiny_model_dir, tmp_path / "local", workers=0
    )
    remote = msfkit.embed(
        f"s3://{s3_bucket}/shards/train-{{0..1}}.tar", tiny_model_dir, tmp_path / "remote", workers=0
    )
    assert remote.parts[0].manifest.source_root == f"s3://{s3_bucket}/shards"
    assert remote.run.embedded == 3 and list(remote.errors["path"]) == list(local.errors["path"]) == [
        "train-0.tar/../up.jpg",
        "train-1.tar/../up.jpg",
    ]
    for column in ("path", "label", "width", "height", "bytes"):
        assert list(remote.meta[column]) == list(local.meta[column])
    np.testing.assert_array_equal(remote.vectors, local.vectors)
    again = msfkit.embed(f"s3://{s3_bucket}/shards/train-{{0..1}}.tar", tiny_model_dir, tmp_path / "remote")
    assert (again.run.embedded, again.run.skipped, again.run.gone) == (0, 5, 0)  # members are not "gone"
