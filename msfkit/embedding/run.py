"""Embedding image collections into a store: resumable, sharded, and indifferent to bad files.

    summary = embed(["photos/"], "org/model@v1", "store/")       # or an Encoder; see EmbedOptions

How a run goes. The files not yet in the store, sorted, are cut into shards of `shard_rows`:
shard base + j holds positions [j*shard_rows, (j+1)*shard_rows), where base is the first free
shard number, and is committed by renaming its metadata file into place (`msfkit.store.writer`).
The plan (base, hash of the file list) is in the manifest, so a rerun after a kill (SIGKILL
included) finds the same shards, skips the committed ones and redoes the rest: every file ends
up exactly once, in the same order as an uninterrupted run. A rerun over a grown collection
embeds only the new files, as new shards; a file changed since it was embedded (size or mtime)
is embedded again and its row replaced where it is, row ids unchanged (`changes`).

Under `torchrun`, rank r does shards base + r, base + r + world, ...; rank 0 plans, locks the store,
and writes the final manifest after a barrier. No features travel between ranks. `shard=(i, n)`
(`--shard i/n`) instead takes the i-th of n contiguous slices of the file list, for machines that
share no process group, and writes the store `out/part-0000i-of-0000n`.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msfkit.data.inputs import Listing, SourceFile, list_inputs
from msfkit.embedding.changes import commit_replacement, find_changes
from msfkit.embedding.pipeline import EmbedOptions
from msfkit.embedding.summary import EmbedSummary
from msfkit.models import Encoder
from msfkit.models.errors import MsfkitError
from msfkit.models.hub import parse_hub_id
from msfkit.runtime import EMBED_TIMEOUT, Ranks
from msfkit.store import writer
from msfkit.store.format import (
    committed_shards,
    new_manifest,
    now,
    part_name,
    read_manifest,
    shard_name,
    shard_paths,
    write_manifest,
)

DEFAULT_SHARD_ROWS = 4096


@dataclass
class StoreOptions:
    """What `embed` does with the store folder (the vectors themselves: `EmbedOptions`)."""

    shard: tuple[int, int] | None = None  # (i, n): this machine's slice, written to out/part-i-of-n
    overwrite: bool = False  # replace a store of another model, source or settings
    strict: bool = False  # raise after the run when any file could not be embedded
    shard_rows: int = DEFAULT_SHARD_ROWS  # files per committed shard

    def __post_init__(self) -> None:
        s = self.shard
        if s is not None and not (s[1] >= 1 and 0 <= s[0] < s[1]):
            raise MsfkitError(f"--shard {s[0]}/{s[1]}: expected i/n with 0 <= i < n")
        if self.shard_rows < 1:
            raise MsfkitError("shard_rows must be >= 1")


def embed(
    inputs: Sequence[str | Path] | str | Path,
    model: Encoder | str,
    out: str | Path,
    options: EmbedOptions | None = None,
    store: StoreOptions | None = None,
) -> EmbedSummary:
    """Embed every image named by `inputs` (folders, path lists, files) into the store `out`."""
    opts = options or EmbedOptions(progress=True)
    store = store or StoreOptions()
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    started = time.perf_counter()
    out = Path(out) / part_name(*store.shard) if store.shard is not None else Path(out)
    ranks = Ranks.from_env(timeout=EMBED_TIMEOUT)
    try:
        dev = ranks.device(str(opts.device) if opts.device is not None else "auto")
        encoder = model if isinstance(model, Encoder) else Encoder.from_pretrained(str(model))
        # what must not change between a run and its resumption (the vectors or the plan would differ)
        settings = {"precision": opts.precision, "draft": opts.draft, "shard_rows": store.shard_rows}
        plan = ranks.from_rank0(lambda: _plan(inputs, encoder, out, store, settings))
        # (shard, files, replace?): changed files' rows first, then the new shards; shards split by rank
        world, rank = ranks.world, ranks.rank
        jobs = [(k, f, True) for k, f in sorted(plan["replace"].items()) if k % world == rank]
        jobs += [(k, f, False) for k, f in plan["todo"].items() if (k - plan["base"]) % world == rank]
        embedded, failed, changed = ranks.sum(_run(encoder, jobs, out, dev, opts, ranks))
        ranks.barrier()
        if ranks.rank == 0:
            manifest = writer.finish(out)
        ranks.barrier()
        if ranks.rank != 0:
            manifest = read_manifest(out)
    finally:
        writer.unlock(out)
        ranks.close()
    counts = manifest["counts"]
    summary = EmbedSummary(
        str(out), embedded, failed, plan["skipped"], time.perf_counter() - started,
        counts["embedded"], counts["failed"], changed, plan["gone"], plan["unreadable"],
    )  # fmt: skip
    if store.strict and summary.store_failed:
        raise MsfkitError(f"{summary.store_failed} files could not be embedded (see {out}/errors.parquet)")
    return summary


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
    inputs: Sequence[str | Path], encoder: Encoder, out: Path, store: StoreOptions, settings: dict[str, Any]
) -> dict[str, Any]:
    """Check or create the store, and decide which shards hold which files; saved in the manifest."""
    listing = list_inputs(inputs)
    for folder in listing.unreadable:
        print(f"warning: cannot read the folder {folder}; its images are not embedded", file=sys.stderr)
    if store.shard is not None:
        i, n = store.shard
        files = listing.files
        part = files[i * len(files) // n : (i + 1) * len(files) // n]
        listing = Listing(listing.root, part, listing.unreadable if i == 0 else [])  # counted once, in part 0
    manifest = _open_for_writing(out, encoder, listing.root, store, settings)
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
    rows = store.shard_rows
    planned = {base + j: left[j * rows : (j + 1) * rows] for j in range((len(left) + rows - 1) // rows)}
    todo = {k: files for k, files in planned.items() if k not in committed}
    changes = find_changes(out, committed, listing)
    plan = {"base": base, "shards": len(planned), "files": len(listing.files), "listing_hash": listing.hash}
    # the shards whose rows this run replaces: readers hash them differently until the run completes
    plan |= {"replace": [shard_name(k) for k in sorted(changes.changed)], "run": secrets.token_hex(8)}
    manifest.update(complete=False, updated=now(), plan=plan)
    write_manifest(out, manifest)
    skipped = len(listing.files) - sum(len(files) for files in todo.values()) - changes.count
    unreadable = len(listing.unreadable)
    return {"base": base, "todo": todo, "replace": changes.changed, "skipped": skipped, "gone": changes.gone,
            "unreadable": unreadable}  # fmt: skip


def _open_for_writing(
    out: Path, encoder: Encoder, source_root: Path, store: StoreOptions, settings: dict[str, Any]
) -> dict[str, Any]:
    """The existing manifest if this run may continue the store at `out`, else a new store's."""
    existing = read_manifest(out) if out.is_dir() else None
    if existing is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MsfkitError(f"{out}: exists and is not an embedding store; choose another -o")
    out.mkdir(parents=True, exist_ok=True)
    writer.lock(out)
    if existing is not None and store.overwrite:
        writer.clear(out)
        existing = None
    if existing is not None:
        _check_same(out, existing, encoder, source_root, settings)
        return existing
    model = {
        "name": loadable_name(encoder),
        "revision": encoder.revision,
        "fingerprint": encoder.fingerprint,
        "config": encoder.config.to_dict(),
    }
    return new_manifest(model, encoder.embedding_dim, source_root, store.shard, settings)


def _check_same(
    out: Path, manifest: dict[str, Any], encoder: Encoder, source_root: Path, settings: dict[str, Any]
) -> None:
    fix = "use --force to replace it, or another -o"
    model = manifest["model"]
    if model.get("fingerprint") != encoder.fingerprint:
        raise MsfkitError(
            f"{out} was embedded with another model ({model.get('name')}, fingerprint "
            f"{model.get('fingerprint')}, not {encoder.fingerprint}); {fix}"
        )
    if manifest.get("source_root") != str(source_root):
        raise MsfkitError(f"{out} holds images of {manifest.get('source_root')}, not {source_root}; {fix}")
    for key, value in settings.items():
        if manifest.get("settings", {}).get(key) != value:
            raise MsfkitError(
                f"{out} was embedded with {key}={manifest['settings'].get(key)}, not {value}; {fix}"
            )


# -- the work loop (every rank) ----------------------------------------------------------------


def _run(encoder: Encoder, jobs: list, out: Path, device, opts: EmbedOptions, ranks) -> tuple[int, int, int]:
    """Embed this rank's jobs (shard, files, replace?) in order, committing each shard (or replacing
    the rows of its changed files) as soon as it is whole; (embedded, failed, replaced)."""
    import torch
    from tqdm import tqdm

    from msfkit.embedding.eta import job_line
    from msfkit.embedding.pipeline import Forward, chunks, default_batch_size, default_workers, iter_batches
    from msfkit.models.runtime import evaluating

    files = [f for _, job_files, _ in jobs for f in job_files]
    bs = opts.batch_size or default_batch_size(device)
    nworkers = default_workers(device, ranks.local_world) if opts.workers is None else opts.workers
    bounds, batches, start = [], [], 0  # bounds: (job, first position, end position)
    for job in jobs:
        bounds.append((job, start, start + len(job[1])))
        batches += chunks(start, start + len(job[1]), bs)
        start += len(job[1])
    bar = tqdm(
        total=len(files),
        unit="img",
        desc="embed" if ranks.world == 1 else f"embed (rank 0 of {ranks.world})",
        disable=not opts.progress or ranks.rank != 0,
        file=sys.stderr,
        smoothing=0.1,
    )
    line = job_line(opts.announce if ranks.rank == 0 else False, len(files), encoder.config.arch, device)
    embedded = failed = replaced = 0
    pending: list[tuple[int, np.ndarray | None, tuple | None, str | None]] = []  # (position, vector, ...)
    next_bound = 0
    run_opts = dataclasses.replace(opts, device=device)
    with evaluating(encoder, device), torch.inference_mode(), bar:
        stream = iter_batches([f.path for f in files], encoder.preprocess, batches, run_opts, nworkers)
        forward = Forward(encoder, opts.precision, opts.use_frozen(len(files)))  # while workers decode
        if line is not None:
            line.run_started()
        for batch in stream:
            if batch.pixels is not None:
                vectors = forward(batch.pixels)
                decoded = zip(batch.index, vectors, batch.info, strict=True)
                pending += [(i, v, info, None) for i, v, info in decoded]
            pending += [(i, None, None, reason) for i, reason in batch.failed]
            bar.update(len(batch.index) + len(batch.failed))
            if line is not None:
                line.batch(len(batch.index) + len(batch.failed))
            while next_bound < len(bounds) and len(pending) == bounds[next_bound][2] - bounds[next_bound][1]:
                (k, job_files, replace), first, _ = bounds[next_bound]
                rows = [(i - first, *rest) for i, *rest in sorted(pending, key=lambda r: r[0])]
                if replace:
                    n = commit_replacement(out, k, job_files, rows)
                    replaced, failed = replaced + n, failed + len(rows) - n
                else:
                    _commit(out, k, job_files, rows, encoder.embedding_dim)
                    embedded += sum(r[1] is not None for r in rows)
                    failed += sum(r[1] is None for r in rows)
                pending, next_bound = [], next_bound + 1
    return embedded, failed, replaced


def _commit(out: Path, k: int, files: list[SourceFile], rows: list, dim: int) -> None:
    """Write shard `k` of `files` from its (position in files, vector, info, reason) rows, in order."""
    good = [r for r in rows if r[1] is not None]
    meta = {
        "path": [files[i].rel for i, *_ in good],
        "label": [files[i].label for i, *_ in good],
        "width": [info[0] for _, _, info, _ in good],
        "height": [info[1] for _, _, info, _ in good],
        "bytes": [info[2] for _, _, info, _ in good],
        "mtime": [info[3] for _, _, info, _ in good],
        "mtime_ns": [info[4] for _, _, info, _ in good],
    }
    vectors = np.stack([v for _, v, _, _ in good]) if good else np.zeros((0, dim), np.float32)
    errors = [(files[i].rel, reason) for i, _, _, reason in rows if reason is not None]
    writer.write_shard(out, k, vectors, meta, errors)
