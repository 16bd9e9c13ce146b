"""Embedding image collections into a store: resumable, sharded, and indifferent to bad files.

    summary = embed(["photos/"], "org/model@v1", "store/")       # or an Encoder
    vectors, bad = embed_files(encoder, ["q1.jpg", "q2.png"])    # in memory, for queries

How a run goes. The files not yet in the store, sorted, are cut into shards of `shard_rows`:
shard base + j holds positions [j*shard_rows, (j+1)*shard_rows), where base is the first free
shard number, and is committed by renaming its metadata file into place (see msfkit.store.reader). The
plan (base, hash of the file list) is in the manifest, so a rerun after a kill
(SIGKILL included) finds the same shards, skips the committed ones and redoes the rest: every file
ends up exactly once, in the same order as an uninterrupted run. A rerun over a grown collection
embeds only the new files, as new shards.

Under `torchrun`, rank r does shards base + r, base + r + world, ...; rank 0 plans, locks the store,
and writes the final manifest after a barrier. No features travel between ranks. `shard=(i, n)`
(`--shard i/n`) instead takes the i-th of n contiguous slices of the file list, for machines that
share no process group, and writes the store `out/part-0000i-of-0000n`.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from msfkit import _version
from msfkit.data.images import DEFAULT_MAX_PIXELS
from msfkit.data.inputs import Listing, SourceFile, list_inputs
from msfkit.models import Encoder
from msfkit.models.errors import MsfkitError
from msfkit.models.hub import parse_hub_id
from msfkit.store.reader import (
    FORMAT_VERSION,
    committed_shards,
    merge_errors,
    part_name,
    read_manifest,
    shard_info,
    shard_paths,
    write_manifest,
    write_shard,
)

DEFAULT_SHARD_ROWS = 4096
FROZEN_MIN_FILES = 256  # below this, building the frozen CPU graph costs more than it saves
PRECISIONS = ("fp32", "bf16")
_LOCKS: dict[Path, int] = {}  # store folder -> descriptor holding its lock (rank 0 of a running embed)


@dataclass
class EmbedSummary:
    """What one run did (this run's counts) and what the store now holds."""

    store: str
    embedded: int  # files embedded by this run
    failed: int  # files this run could not embed
    skipped: int  # files already in the store (embedded or failed) before this run
    seconds: float
    store_embedded: int  # rows in the store after the run
    store_failed: int  # rows of errors.parquet after the run

    @property
    def images_per_s(self) -> float:
        return (self.embedded + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The one-line report the CLI ends with."""
        return (
            f"embedded {self.embedded}, failed {self.failed}, skipped {self.skipped} "
            f"in {self.seconds:.1f} s ({self.images_per_s:.1f} images/s) -> {self.store}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": round(self.images_per_s, 2)}


def embed(
    inputs: Sequence[str | Path],
    model: Encoder | str,
    out: str | Path,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    precision: str = "fp32",
    device: str = "auto",
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    strict: bool = False,
    progress: bool = True,
    draft: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    frozen: bool | None = None,
) -> EmbedSummary:
    """Embed every image named by `inputs` (folders, path lists, files) into the store `out`.

    `strict`: raise MsfkitError after the run when any file could not be embedded.
    `draft=False` decodes every JPEG at full size (slower; bit-for-bit what `Encoder.embed` sees).
    `frozen`: on CPU, run a frozen TorchScript graph of the model (see `msfkit.embedding.pipeline.Forward`);
    None (the default) does so when there are at least FROZEN_MIN_FILES files to embed.
    """
    from msfkit.runtime import Ranks

    if precision not in PRECISIONS:
        raise MsfkitError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise MsfkitError(f"--shard {shard[0]}/{shard[1]}: expected i/n with 0 <= i < n")
    if shard_rows < 1:
        raise MsfkitError("shard_rows must be >= 1")
    started = time.perf_counter()
    out = Path(out) / part_name(*shard) if shard is not None else Path(out)
    ranks = Ranks.from_env()
    try:
        dev = ranks.device(device)
        encoder = _load(model)
        # what must not change between a run and its resumption (the vectors or the plan would differ)
        settings = {"precision": precision, "draft": draft, "shard_rows": shard_rows}
        plan = ranks.from_rank0(lambda: _plan(inputs, encoder, out, shard, settings, overwrite))
        mine = {
            k: files for k, files in plan["todo"].items() if (k - plan["base"]) % ranks.world == ranks.rank
        }
        frozen = _use_frozen(frozen, sum(len(files) for files in mine.values()))
        how = (precision, batch_size, workers, draft, max_pixels, frozen)
        counts = _run(encoder, mine, out, dev, *how, progress, ranks)
        embedded, failed = ranks.sum(counts)
        ranks.barrier()
        if ranks.rank == 0:
            manifest = _finish(out)
        ranks.barrier()
        if ranks.rank != 0:
            manifest = read_manifest(out)
    finally:
        _unlock(out)
        ranks.close()
    summary = EmbedSummary(
        str(out),
        embedded,
        failed,
        plan["skipped"],
        time.perf_counter() - started,
        manifest["counts"]["embedded"],
        manifest["counts"]["failed"],
    )
    if strict and summary.store_failed:
        raise MsfkitError(f"{summary.store_failed} files could not be embedded (see {out}/errors.parquet)")
    return summary


def embed_files(
    encoder: Encoder,
    paths: Sequence[str | Path],
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    precision: str = "fp32",
    device: str | None = None,
    draft: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    frozen: bool | None = None,
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """(float32 (n_good, D) vectors in the order of `paths`, [(path, reason)] for the files that failed).

    For queries and evaluation: nothing is written. Decodes in the calling process unless there
    are more files than one batch (or `workers` says otherwise). `frozen`: see `embed`.
    """
    import torch

    from msfkit.embedding.pipeline import (
        Forward,
        Preprocess,
        chunks,
        default_batch_size,
        default_workers,
        iter_batches,
    )

    if precision not in PRECISIONS:
        raise MsfkitError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    dev = torch.device(device) if device is not None else next(encoder.parameters()).device
    bs = batch_size or default_batch_size(dev)
    if workers is None:
        workers = default_workers(dev) if len(paths) > bs else 0
    prep = Preprocess.for_encoder(encoder, draft, max_pixels)
    names = [str(p) for p in paths]
    rows, bad = [], []
    with _eval_on(encoder, dev), torch.inference_mode():
        stream = iter_batches(names, prep, chunks(0, len(names), bs), workers, dev.type == "cuda")
        forward = Forward(encoder, prep, precision, _use_frozen(frozen, len(names)))
        for batch in stream:
            if batch.pixels is not None:
                rows.append(forward(batch.pixels))
            bad += [(names[i], reason) for i, reason in batch.failed]
    vectors = np.concatenate(rows) if rows else np.zeros((0, encoder.embedding_dim), np.float32)
    return vectors, bad


def loadable_name(encoder: Encoder) -> str | None:
    """A name `msfkit.load` gives this encoder back by: an absolute folder, or 'org/name@commit'."""
    if encoder.name is None:
        return None
    folder = Path(encoder.name).expanduser()
    if folder.is_dir():
        return str(folder.resolve())
    hub = parse_hub_id(encoder.name)
    if hub is None:
        return encoder.name
    repo, revision = hub
    return f"{repo}@{encoder.revision or revision}" if encoder.revision or revision else repo


# -- planning (rank 0) -------------------------------------------------------------------------


def _plan(
    inputs: Sequence[str | Path],
    encoder: Encoder,
    out: Path,
    shard: tuple[int, int] | None,
    settings: dict[str, Any],
    overwrite: bool,
) -> dict[str, Any]:
    """Check or create the store, and decide which shards hold which files; saved in the manifest."""
    listing = list_inputs(inputs)
    if shard is not None:
        i, n = shard
        listing = Listing(
            listing.root, listing.files[i * len(listing.files) // n : (i + 1) * len(listing.files) // n]
        )
    manifest = _open_for_writing(out, encoder, listing.root, shard, settings, overwrite)
    committed = committed_shards(out)
    old = manifest.get("plan")
    if old and not manifest["complete"] and old["listing_hash"] == listing.hash:
        base = old["base"]  # resume the interrupted plan exactly, so shard contents match
        earlier = [k for k in committed if k < base]
    else:
        base = committed[-1] + 1 if committed else 0
        earlier = committed
    done = {p for k in earlier for p in shard_paths(out, k)}
    left = [f for f in listing.files if f.rel not in done]
    rows = settings["shard_rows"]
    planned = {base + j: left[j * rows : (j + 1) * rows] for j in range((len(left) + rows - 1) // rows)}
    todo = {k: files for k, files in planned.items() if k not in committed}
    manifest.update(
        complete=False,
        updated=_now(),
        plan={
            "base": base,
            "shards": len(planned),
            "files": len(listing.files),
            "listing_hash": listing.hash,
        },
    )
    write_manifest(out, manifest)
    skipped = len(listing.files) - sum(len(files) for files in todo.values())
    return {"base": base, "todo": todo, "skipped": skipped}


def _open_for_writing(
    out: Path,
    encoder: Encoder,
    source_root: Path,
    shard: tuple[int, int] | None,
    settings: dict[str, Any],
    overwrite: bool,
) -> dict[str, Any]:
    """The existing manifest if this run may continue the store at `out`, else a new store's."""
    existing = read_manifest(out) if out.is_dir() else None
    if existing is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MsfkitError(f"{out}: exists and is not an embedding store; choose another -o")
    out.mkdir(parents=True, exist_ok=True)
    _lock(out)
    if existing is not None and overwrite:
        for child in out.iterdir():  # the folder itself stays: it carries the lock
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        existing = None
    if existing is not None:
        _check_same(out, existing, encoder, source_root, settings)
        return existing
    return {
        "format_version": FORMAT_VERSION,
        "model": {
            "name": loadable_name(encoder),
            "revision": encoder.revision,
            "fingerprint": encoder.fingerprint,
            "config": encoder.config.to_dict(),
        },
        "dim": encoder.embedding_dim,
        "dtype": "float32",
        "normalized": True,
        "source_root": str(source_root),
        "part": {"index": shard[0], "count": shard[1]} if shard else None,
        "settings": settings,
        "counts": {"embedded": 0, "failed": 0},
        "shards": [],
        "complete": False,
        "created": _now(),
        "msfkit_version": _version.__version__,
    }


def _check_same(
    out: Path, manifest: dict[str, Any], encoder: Encoder, source_root: Path, settings: dict[str, Any]
) -> None:
    fix = "use --overwrite to replace it, or another -o"
    model = manifest["model"]
    if model["fingerprint"] != encoder.fingerprint:
        raise MsfkitError(
            f"{out} was embedded with another model ({model['name']}, fingerprint {model['fingerprint']}, "
            f"not {encoder.fingerprint}); {fix}"
        )
    if manifest["source_root"] != str(source_root):
        raise MsfkitError(f"{out} holds images of {manifest['source_root']}, not {source_root}; {fix}")
    for key, value in settings.items():
        if manifest.get("settings", {}).get(key) != value:
            raise MsfkitError(
                f"{out} was embedded with {key}={manifest['settings'].get(key)}, not {value}; {fix}"
            )


def _lock(out: Path) -> None:
    """Hold an exclusive lock on the store folder until `_unlock`, so a second run on it stops at once."""
    import fcntl

    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise MsfkitError(
            f"{out} is being written by another msfkit embed; let it finish, or use another -o"
        ) from None
    _LOCKS[out] = fd


def _unlock(out: Path) -> None:
    fd = _LOCKS.pop(out, None)
    if fd is not None:
        os.close(fd)


def _finish(out: Path) -> dict[str, Any]:
    """Write errors.parquet and the final manifest (counts, shard list); the store is complete."""
    shards = committed_shards(out)
    merge_errors(out, shards)
    manifest = read_manifest(out)
    infos = [shard_info(out, k) for k in shards]
    manifest.update(
        shards=infos,
        counts={"embedded": sum(s["rows"] for s in infos), "failed": sum(s["failed"] for s in infos)},
        complete=True,
        updated=_now(),
    )
    write_manifest(out, manifest)
    return manifest


# -- the work loop (every rank) ----------------------------------------------------------------


def _run(
    encoder: Encoder,
    shards: dict[int, list[SourceFile]],
    out: Path,
    device,
    precision: str,
    batch_size: int | None,
    workers: int | None,
    draft: bool,
    max_pixels: int,
    frozen: bool,
    progress: bool,
    ranks,
) -> tuple[int, int]:
    """Embed this rank's shards in order, committing each as soon as it is whole; (embedded, failed)."""
    import torch
    from tqdm import tqdm

    from msfkit.embedding.pipeline import (
        Forward,
        Preprocess,
        chunks,
        default_batch_size,
        default_workers,
        iter_batches,
    )

    files = [f for k in sorted(shards) for f in shards[k]]
    bs = batch_size or default_batch_size(device)
    nworkers = default_workers(device, ranks.local_world) if workers is None else workers
    bounds, batches, start = [], [], 0  # bounds: (shard, first position, end position)
    for k in sorted(shards):
        bounds.append((k, start, start + len(shards[k])))
        batches += chunks(start, start + len(shards[k]), bs)
        start += len(shards[k])
    prep = Preprocess.for_encoder(encoder, draft, max_pixels)
    bar = tqdm(
        total=len(files),
        unit="img",
        desc="embed" if ranks.world == 1 else f"embed (rank 0 of {ranks.world})",
        disable=not progress or ranks.rank != 0,
        file=sys.stderr,
        smoothing=0.1,
    )
    embedded = failed = 0
    pending: list[tuple[int, np.ndarray, dict[str, Any] | None, str | None]] = []  # (position, vector, ...)
    next_bound = 0
    with _eval_on(encoder, device), torch.inference_mode(), bar:
        stream = iter_batches([f.path for f in files], prep, batches, nworkers, device.type == "cuda")
        forward = Forward(encoder, prep, precision, frozen)  # built while the workers decode ahead
        for batch in stream:
            if batch.pixels is not None:
                vectors = forward(batch.pixels)
                pending += [
                    (i, v, info, None) for i, v, info in zip(batch.index, vectors, batch.info, strict=True)
                ]
            pending += [(i, None, None, reason) for i, reason in batch.failed]
            embedded += len(batch.index)
            failed += len(batch.failed)
            bar.update(len(batch.index) + len(batch.failed))
            while next_bound < len(bounds) and len(pending) == bounds[next_bound][2] - bounds[next_bound][1]:
                _commit(out, bounds[next_bound][0], files, pending, encoder.embedding_dim)
                pending, next_bound = [], next_bound + 1
    return embedded, failed


def _commit(out: Path, k: int, files: list[SourceFile], rows: list, dim: int) -> None:
    rows.sort(key=lambda r: r[0])
    good = [r for r in rows if r[1] is not None]
    meta = {
        "path": [files[i].rel for i, *_ in good],
        "label": [files[i].label for i, *_ in good],
        "width": [info[0] for _, _, info, _ in good],
        "height": [info[1] for _, _, info, _ in good],
        "bytes": [info[2] for _, _, info, _ in good],
        "mtime": [info[3] for _, _, info, _ in good],
    }
    vectors = np.stack([v for _, v, _, _ in good]) if good else np.zeros((0, dim), np.float32)
    errors = [(files[i].rel, reason) for i, _, _, reason in rows if reason is not None]
    write_shard(out, k, vectors, meta, errors)


class _eval_on:
    """Run the encoder in eval mode on `device` (channels_last), restoring its mode afterwards."""

    def __init__(self, encoder: Encoder, device) -> None:
        self.encoder, self.device = encoder, device

    def __enter__(self) -> Encoder:
        import torch

        self.was_training = self.encoder.training
        return self.encoder.eval().to(self.device, memory_format=torch.channels_last)

    def __exit__(self, *exc) -> None:
        self.encoder.train(self.was_training)


def _use_frozen(frozen: bool | None, files: int) -> bool:
    return files >= FROZEN_MIN_FILES if frozen is None else frozen


def _load(model: Encoder | str) -> Encoder:
    if isinstance(model, Encoder):
        return model
    import msfkit

    return msfkit.load(str(model))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
