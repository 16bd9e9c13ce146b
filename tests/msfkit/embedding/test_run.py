"""msfkit.embedding.run: bad files, fidelity to Encoder.embed, resuming, adding, refusing the wrong store."""

from __future__ import annotations

import fcntl
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import msfkit
from msfkit.embedding import EmbedOptions
from msfkit.embedding.commit import commit_job
from msfkit.embedding.pipeline import Embedder
from msfkit.embedding.plan import StoreOptions, plan_run
from msfkit.models import Encoder, EncoderConfig, MsfkitError
from msfkit.store import open_store, writer
from msfkit.store.format import EmbedSettings, part_name, read_manifest
from tests.bad_images import write_bad_files, write_odd_images
from tests.runs import embed, embed_files


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory, photo_paths):
    """photos/a: 8 photos, photos/b: 11 awkward formats and modes, photos/: 6 bad files."""
    root = tmp_path_factory.mktemp("mixed") / "photos"
    (root / "a").mkdir(parents=True)
    for p in photo_paths[:8]:
        shutil.copy(p, root / "a" / p.name)
    write_odd_images(root / "b", photo_paths[8])
    reasons = write_bad_files(root, photo_paths[9])
    return root, reasons


@pytest.fixture(scope="module")
def exact_store(tmp_path_factory, mixed_dir, tiny_model_dir):
    """The mixed folder embedded without JPEG draft decoding, in shards of 4, with 2 decoding workers."""
    out = tmp_path_factory.mktemp("stores") / "exact"
    summary = embed(
        [mixed_dir[0]], str(tiny_model_dir), out, draft=False, shard_rows=4, batch_size=3, workers=2
    )
    return out, summary


def test_bad_files_are_recorded_with_reasons_and_never_stop_the_run(exact_store, mixed_dir):
    out, summary = exact_store
    root, reasons = mixed_dir
    assert (summary.embedded, summary.failed, summary.skipped) == (19, 6, 0)
    store = open_store(out)
    assert len(store) == 19 and store.complete
    errors = dict(zip(store.errors["path"], store.errors["reason"], strict=True))
    assert sorted(errors) == sorted(reasons)
    for name, reason in errors.items():
        assert reason.startswith(reasons[name]), (name, reason)
    meta = store.meta
    assert meta["path"].tolist() == sorted(meta["path"])
    assert set(meta["label"]) == {"a", "b"}
    rotated = meta[meta["path"] == "b/rotated.jpg"].iloc[0]
    assert (rotated["width"], rotated["height"]) == (64, 96)
    manifest = read_manifest(out)
    assert manifest.counts == (19, 6) and manifest.complete
    assert len(manifest.shards) == 7  # 25 files in shards of 4


def test_vectors_match_encoder_embed_on_the_same_images(exact_store, mixed_dir, tiny_model_dir):
    out, _ = exact_store
    store = open_store(out)
    encoder = msfkit.load(str(tiny_model_dir))
    expected = encoder.embed([Image.open(mixed_dir[0] / p) for p in store.meta["path"]])
    assert np.abs(store.vectors - expected).max() <= 1e-5


def test_manifest_names_the_model_so_it_can_be_loaded_and_checked(exact_store, tiny_model_dir):
    store = open_store(exact_store[0])
    model = msfkit.load(store.model.name)
    assert store.model.name == str(tiny_model_dir.resolve())
    assert model.fingerprint == store.model.fingerprint
    assert EncoderConfig.from_dict(store.model.config) == model.config
    assert store.dim == 512 and store.normalized


@pytest.mark.slow
def test_draft_decoding_and_bf16_stay_close_to_exact(tmp_path, exact_store, mixed_dir, tiny_model_dir):
    exact = open_store(exact_store[0]).vectors
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        embed([mixed_dir[0]], str(tiny_model_dir), out, precision=precision, workers=0, draft=True)
        vectors = open_store(out).vectors
        cosine = (vectors * exact).sum(1)
        assert cosine.min() > 0.99, (precision, cosine.min())
        assert np.abs(vectors - exact).max() > 1e-6  # it really decoded differently


def test_a_batch_of_only_bad_files_is_fine(tmp_path, photo_paths, tiny_model_dir):
    write_bad_files(tmp_path / "bad", photo_paths[0])
    summary = embed([tmp_path / "bad"], str(tiny_model_dir), tmp_path / "out", batch_size=2, workers=0)
    assert (summary.embedded, summary.failed) == (0, 6)
    store = open_store(tmp_path / "out")
    assert len(store) == 0 and store.vectors.shape == (0, 512) and len(store.errors) == 6


def test_a_rerun_skips_what_is_done_and_embeds_only_new_files(tmp_path, photo_paths, tiny_model_dir):
    src = tmp_path / "src"
    src.mkdir()
    for p in photo_paths[:5]:
        shutil.copy(p, src / p.name)
    out = tmp_path / "out"
    first = embed([src], str(tiny_model_dir), out, shard_rows=2, workers=0)
    again = embed([src], str(tiny_model_dir), out, shard_rows=2, workers=0)
    assert (first.embedded, again.embedded, again.skipped) == (5, 0, 5)
    for p in photo_paths[5:8]:
        shutil.copy(p, src / p.name)
    more = embed([src], str(tiny_model_dir), out, shard_rows=2, workers=0)
    assert (more.embedded, more.skipped) == (3, 5)
    paths = open_store(out).meta["path"].tolist()
    assert sorted(paths) == sorted(p.name for p in photo_paths[:8])  # each exactly once


@pytest.mark.slow
def test_an_interrupted_plan_is_resumed_with_the_same_shards(tmp_path, mixed_dir, tiny_model_dir):
    full = embed([mixed_dir[0]], str(tiny_model_dir), tmp_path / "full", shard_rows=4, workers=0)
    out = tmp_path / "cut"
    shutil.copytree(tmp_path / "full", out)
    # what a kill leaves: shards 3.. never committed, the vectors of shard 3 already renamed
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    for k in range(3, 7):
        (out / "meta" / f"{k:05d}.parquet").unlink()
        if k > 3:
            (out / "emb" / f"{k:05d}.npy").unlink()
    resumed = embed([mixed_dir[0]], str(tiny_model_dir), out, shard_rows=4, workers=0)
    assert resumed.embedded + resumed.failed + resumed.skipped == full.embedded + full.failed
    assert resumed.skipped == 12
    a, b = open_store(tmp_path / "full"), open_store(out)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.meta.equals(b.meta) and a.errors.equals(b.errors)


@pytest.mark.slow
def test_another_model_source_or_precision_is_refused_unless_overwrite(tmp_path, photos_dir, tiny_model_dir):
    out = tmp_path / "out"
    embed([photos_dir], str(tiny_model_dir), out, workers=0)
    torch.manual_seed(1)
    other = Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32))
    with pytest.raises(MsfkitError, match=r"and this run's model come from different models: .* use --force"):
        embed([photos_dir], other, out, workers=0)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(photos_dir, elsewhere)
    with pytest.raises(MsfkitError, match=r"holds images of .*photos, not .*elsewhere"):
        embed([elsewhere], str(tiny_model_dir), out, workers=0)
    with pytest.raises(MsfkitError, match="precision=fp32, not bf16"):
        embed([photos_dir], str(tiny_model_dir), out, workers=0, precision="bf16")
    summary = embed([elsewhere], other, out, workers=0, overwrite=True)
    assert summary.embedded == 8 and open_store(out).model.fingerprint == other.fingerprint
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(MsfkitError, match="not an embedding store"):
        embed([photos_dir], other, tmp_path / "notes", workers=0, overwrite=True)


def test_path_lists_and_single_files_are_inputs_too(tmp_path, photos_dir, photo_paths, tiny_model_dir):
    listing = photos_dir / "list.txt"
    names = sorted(p.name for p in photos_dir.glob("*.jpg"))
    listing.write_text("# my picks\n" + "\n".join(names[:3]) + "\n\nmissing.jpg\n")
    out = tmp_path / "out"
    summary = embed([listing, photos_dir / names[5]], str(tiny_model_dir), out, workers=0)
    store = open_store(out)
    assert (summary.embedded, summary.failed) == (4, 1)
    assert store.meta["path"].tolist() == sorted([*names[:3], names[5]])
    assert store.errors.to_dict("records") == [{"path": "missing.jpg", "reason": "no such file"}]
    with pytest.raises(MsfkitError, match="no such file or folder"):
        embed([tmp_path / "nowhere"], str(tiny_model_dir), tmp_path / "o2")


@pytest.mark.slow
def test_shard_parts_read_as_one_equal_a_single_run(tmp_path, mixed_dir, exact_store, tiny_model_dir):
    out = tmp_path / "parts"
    for i in range(3):
        embed([mixed_dir[0]], str(tiny_model_dir), out, shard=(i, 3), draft=False, shard_rows=4, workers=0)
    assert sorted(d.name for d in out.iterdir()) == [part_name(i, 3) for i in range(3)]
    single, parts = open_store(exact_store[0]), open_store(out)
    np.testing.assert_allclose(parts.vectors, single.vectors, atol=1e-5)  # other batches, other rounding
    assert single.meta.equals(parts.meta)
    assert sorted(single.errors["path"]) == sorted(parts.errors["path"])


def test_embed_files_gives_vectors_for_good_files_and_reasons_for_bad(mixed_dir, tiny_model_dir):
    root, reasons = mixed_dir
    encoder = msfkit.load(str(tiny_model_dir))
    good = sorted((root / "a").iterdir())[:3]
    paths = [good[0], root / "empty.jpg", good[1], root / "notes.jpg", good[2]]
    vectors, bad = embed_files(encoder, paths, draft=False)
    np.testing.assert_allclose(vectors, encoder.embed([Image.open(p) for p in good]), atol=1e-5)
    assert bad == [
        (str(root / "empty.jpg"), "zero bytes"),
        (str(root / "notes.jpg"), "not an image (text file)"),
    ]


def test_a_store_being_written_by_another_run_is_refused(tmp_path, photos_dir, tiny_model_dir):
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)  # what a running `msfkit embed` holds
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(MsfkitError, match="being written by another msfkit embed"):
            embed([photos_dir], str(tiny_model_dir), out, workers=0)
    finally:
        os.close(fd)
    assert embed([photos_dir], str(tiny_model_dir), out, workers=0).embedded == 8


@pytest.mark.slow
def test_overwrite_replaces_a_store_but_never_other_files(tmp_path, photos_dir, tiny_model_dir):
    out = tmp_path / "out"
    embed([photos_dir], str(tiny_model_dir), out, workers=0)
    (out / "notes.txt").write_text("mine")
    other = tmp_path / "other"
    shutil.copytree(photos_dir, other)
    with pytest.raises(MsfkitError, match=r"not a store's \(notes.txt\); left untouched"):
        embed([other], str(tiny_model_dir), out, workers=0, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and len(open_store(out)) == 8
    (out / "notes.txt").unlink()
    assert embed([other], str(tiny_model_dir), out, workers=0, overwrite=True).embedded == 8


def test_shards_embedded_one_at_a_time_by_separate_embedders_make_the_same_store(
    tmp_path, mixed_dir, exact_store, tiny_model_dir
):
    """The split a distributed engine uses: the driver plans and commits, each shard is embedded by
    its own `Embedder` (a worker holding the model), in any order. The store is the local run's."""
    out = tmp_path / "by-shard"
    encoder = msfkit.load(str(tiny_model_dir))
    opts = EmbedOptions(batch_size=3, workers=0)  # exact_store's batches, decoded in this process
    plan = plan_run([mixed_dir[0]], encoder, out, StoreOptions(shard_rows=4), EmbedSettings("fp32", False, 4))
    try:
        for job in reversed(plan.jobs):  # as workers happen to finish
            paths = [f.path for f in job.files]
            (part,) = Embedder(encoder, opts, len(paths)).run(paths, [len(paths)])
            commit_job(out, job, part)
        writer.finish(out)
    finally:
        writer.unlock(out)
    local = exact_store[0]
    files = sorted(
        p.relative_to(local) for p in local.rglob("*") if p.is_file() and p.name != "manifest.json"
    )
    assert len(files) == 3 * 7 + 1
    assert [f for f in files if (out / f).read_bytes() != (local / f).read_bytes()] == []
    assert read_manifest(out).shards == read_manifest(local).shards
