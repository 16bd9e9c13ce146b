"""Embedding image collections into a store: resumable, sharded, and indifferent to bad files.

    summary = embed(["photos/"], "org/model@v1", "store/")       # or an Encoder; see EmbedOptions

A run is three steps, each in its own place: rank 0 plans (`plan.plan_run`: the shards and their
files, saved in the manifest), every rank runs the one embedding loop over its jobs
(`pipeline.Embedder`) and commits each job as soon as it is whole (`commit.commit_job`: a new shard, or
the replaced rows of changed files), and rank 0 writes the final manifest (`writer.finish`).

Under `torchrun`, rank r does shards base + r, base + r + world, ...; rank 0 plans, locks the store,
and writes the final manifest after a barrier. No features travel between ranks. `shard=(i, n)`
(`--shard i/n`) instead takes the i-th of n contiguous slices of the file list, for machines that
share no process group, and writes the store `out/part-0000i-of-0000n`. `engine="ray"`
(`--engine ray`) has Ray workers embed the shards while this process plans and commits
(`ray_engine`); the store is the one a local run writes. An `out` at a URL (`s3://bucket/store`) is
written through a local staging copy: pulled before planning, each shard pushed as it commits, the
final manifest last (`msfkit.store.remote`), so that a killed run's rerun continues from the remote
commit records, here or on another machine.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from msfkit.data.storage import is_remote, local_path, use_storage_options
from msfkit.embedding.commit import commit_job
from msfkit.embedding.pipeline import Embedder, EmbedOptions
from msfkit.embedding.plan import Planned, ShardJob, StoreOptions, plan_run
from msfkit.embedding.ray_engine import connect_cluster, embed_on_ray
from msfkit.embedding.summary import EmbedSummary
from msfkit.models import Encoder
from msfkit.models.errors import MsfkitError
from msfkit.runtime import EMBED_TIMEOUT, Ranks
from msfkit.store import writer
from msfkit.store.format import EmbedSettings, part_name, read_manifest
from msfkit.store.remote import RemoteStore


def split_options(options: dict) -> tuple[EmbedOptions, StoreOptions]:
    """Keyword options (`msfkit.embed(..., batch_size=64, shard="2/4")`) as the embedding's and the
    store's option sets; a TypeError names any that is neither."""
    fields = {f.name for f in dataclasses.fields(EmbedOptions)}
    unknown = set(options) - fields - {f.name for f in dataclasses.fields(StoreOptions)}
    if unknown:
        raise TypeError(f"embed() got unexpected options: {', '.join(sorted(unknown))}")
    embedding = EmbedOptions(**{k: v for k, v in options.items() if k in fields})
    return embedding, StoreOptions(**{k: v for k, v in options.items() if k not in fields})


def embed(
    inputs: Sequence[str | Path] | str | Path,
    model: Encoder | str,
    out: str | Path,
    options: EmbedOptions | None = None,
    store: StoreOptions | None = None,
) -> EmbedSummary:
    """Embed every image named by `inputs` (folders, path lists, files, URL prefixes and tables)
    into the store `out` (a folder, or a URL)."""
    opts = options or EmbedOptions(progress=True)
    store = store or StoreOptions()
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    started = time.perf_counter()
    out = _output(out, store)
    if store.storage_options:
        use_storage_options(store.storage_options, [*inputs, out])
    ranks = Ranks.from_env(timeout=EMBED_TIMEOUT)
    remote = None
    root = out
    try:
        if isinstance(out, str):  # a URL: the local run works on a staging copy of the remote store
            if ranks.world > 1:
                raise MsfkitError(f"{out}: a store at a URL is written by one process; use --engine ray")
            # a bad URL, no credentials, no bucket: one line, before any work
            remote = RemoteStore.begin(out, store.overwrite)
            root = remote.root
        if store.engine == "ray":  # a missing extra or an unreachable cluster stops here, before any write
            _connect_ray(store.address, opts.device, ranks)
        else:  # (Ray workers choose their own devices)
            dev = ranks.device(str(opts.device) if opts.device is not None else "auto")
            opts = dataclasses.replace(opts, device=dev)
        encoder = model if isinstance(model, Encoder) else Encoder.from_pretrained(str(model))
        # what must not change between a run and its resumption (the vectors or the plan would differ)
        settings = EmbedSettings(opts.precision, opts.draft, store.shard_rows)
        if remote is not None:
            with remote.named():
                plan: Planned = plan_run(inputs, encoder, root, store, settings)
            remote.push_plan(store.overwrite)
        else:
            plan = ranks.from_rank0(lambda: plan_run(inputs, encoder, root, store, settings))
        publish = remote.push_shard if remote is not None else None
        jobs = plan.for_rank(ranks.rank, ranks.world)
        if store.engine == "ray":
            counts = embed_on_ray(encoder, jobs, root, opts, store.address, publish)
        else:
            counts = _embed_jobs(encoder, jobs, root, opts, ranks, publish)
        embedded, failed, changed = ranks.sum(counts)
        ranks.barrier()
        if ranks.rank == 0:
            manifest = writer.finish(root)
            if remote is not None:
                remote.push_final()
        ranks.barrier()
        if ranks.rank != 0:
            manifest = read_manifest(root)
    finally:
        writer.unlock(root)
        if remote is not None:
            remote.end()
        ranks.close()
    summary = EmbedSummary(
        str(out),
        embedded,
        failed,
        plan.skipped,
        time.perf_counter() - started,
        *manifest.counts,
        changed=changed,
        gone=plan.gone,
        unreadable_folders=plan.unreadable,
    )
    if store.strict and summary.store_failed:
        raise MsfkitError(f"{summary.store_failed} files could not be embedded (see {out}/errors.parquet)")
    return summary


def _output(out: str | os.PathLike, store: StoreOptions) -> Path | str:
    """The store this run writes: a folder, or a URL (text); a `--shard` part's, below `out`."""
    if is_remote(out):
        url = os.fspath(out).rstrip("/")
        return f"{url}/{part_name(*store.shard)}" if store.shard is not None else url
    folder = Path(local_path(out))
    return folder / part_name(*store.shard) if store.shard is not None else folder


def _connect_ray(address: str | None, device: object, ranks: Ranks) -> None:
    """Connect this driver to the Ray cluster at `address` that `ray_engine.embed_on_ray` uses."""
    if ranks.world > 1:
        raise MsfkitError("--engine ray runs from one driver process; start it without torchrun")
    connect_cluster(address, device)


def _embed_jobs(
    encoder: Encoder,
    jobs: list[ShardJob],
    out: Path,
    opts: EmbedOptions,
    ranks: Ranks,
    publish: Callable[[int], None] | None,
) -> tuple[int, int, int]:
    """This rank's jobs through the one loop, each committed as soon as it is whole (and then
    published, see `commit_job`); (embedded, failed, replaced) counts."""
    if ranks.rank != 0:  # one progress bar and one announcement: rank 0's
        opts = dataclasses.replace(opts, progress=False, announce=False)
    label = "embed" if ranks.world == 1 else f"embed (rank 0 of {ranks.world})"
    files = [f for job in jobs for f in job.files]
    embedder = Embedder(encoder, opts, len(files), label=label, leave=True, local_ranks=ranks.local_world)
    parts = embedder.run([f.path for f in files], [len(job.files) for job in jobs])
    done = [commit_job(out, job, part, publish) for job, part in zip(jobs, parts, strict=True)]
    return tuple(sum(counts[i] for counts in done) for i in range(3))
