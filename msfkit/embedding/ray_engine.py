"""Embedding a run's shards on a Ray cluster (`msfkit embed --engine ray [--address ...]`).

    counts = embed_on_ray(encoder, plan.jobs, out, opts, address="auto")   # (embedded, failed, replaced)

The driver (this process) has planned the run (`plan.plan_run`) and is the only one that writes the
store: workers are Ray actors that hold the model once each (one per GPU where the cluster has
GPUs, else one per CPU), decode and embed one `ShardJob` at a time with the one loop
(`pipeline.Embedder`) and send the shard's `Embedded` back; the driver commits it
(`commit.commit_job`) as it arrives. Every shard is embedded as a local run embeds it (the same
batches, the same choice to compile the model), so the store is the store a local run writes.

A worker that dies (killed, out of memory, a lost node) is restarted by Ray and its shard retried;
a driver that dies leaves the committed shards, and the rerun embeds only the others. Workers read
the images by path: on a cluster of several machines the inputs are on a filesystem they share.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from msfkit.cluster import RETRIES, connect
from msfkit.embedding.commit import commit_job
from msfkit.embedding.pipeline import Embedded, Embedder, EmbedOptions, default_workers
from msfkit.embedding.plan import ShardJob
from msfkit.models import Encoder
from msfkit.models.errors import MsfkitError

# Tests only: (shard, marker file). The first attempt at that shard, finding no marker, creates
# it and ends its worker process with os._exit, as a killed worker would; Ray retries the shard.
CRASH_ONCE: tuple[int, str] | None = None

Key = tuple[int, bool]  # a job's (shard, replace): what a result is committed as


class ShardWorker:
    """A Ray actor: the model on this worker's device, embedding one shard's files per call."""

    def __init__(
        self,
        model: list[Any],
        opts: EmbedOptions,
        items: int,
        gpus_per_node: int,
        crash_once: tuple[int, str] | None,
    ) -> None:
        """`model`: [the encoder's object ref]; `items`: the run's file count (so the choice to
        compile is a local run's). A CPU worker decodes in its own process (the cluster's CPUs are
        the workers); a GPU worker with as many processes as a local rank on a machine with
        `gpus_per_node` GPUs."""
        import ray  # optional extra: ray (the worker's process has it: this class runs only there)

        if opts.workers is None:
            device = torch.device(opts.device)
            workers = default_workers(device, gpus_per_node) if device.type == "cuda" else 0
            opts = dataclasses.replace(opts, workers=workers)
        self.embedder = Embedder(ray.get(model[0]), opts, items)
        self.crash_once = crash_once

    def embed(self, key: Key, paths: list[str]) -> tuple[Key, Embedded]:
        """One shard's `Embedded` (its files in order), with the job's key."""
        if self.crash_once and self.crash_once[0] == key[0] and not os.path.exists(self.crash_once[1]):
            Path(self.crash_once[1]).touch()
            os._exit(1)
        (part,) = self.embedder.run(paths, [len(paths)])
        return key, part


def connect_cluster(address: str | None, device: object = None) -> Any:
    """The `ray` module, connected to the cluster at `address`; one line (MsfkitError) for a
    missing extra, an unreachable cluster, or device "cuda" on a cluster without GPUs."""
    ray = connect(address)
    if str(device or "auto").startswith("cuda") and not ray.cluster_resources().get("GPU"):
        raise MsfkitError("--device cuda: the Ray cluster has no GPU (leave --device out for CPU workers)")
    return ray


def embed_on_ray(
    encoder: Encoder,
    jobs: list[ShardJob],
    out: Path,
    opts: EmbedOptions,
    address: str | None = None,
    publish: Callable[[int], None] | None = None,
) -> tuple[int, int, int]:
    """Embed `jobs` on the Ray cluster at `address` (None: RAY_ADDRESS or a new local one; "auto":
    the one running here), committing each shard to the store `out` (then `publish`, see
    `commit.commit_job`); (embedded, failed, replaced).
    `opts.device`: "cpu", "cuda" or None/"auto" (GPU workers where the cluster has GPUs)."""
    ray = connect_cluster(address, opts.device)
    if not jobs:
        return 0, 0, 0
    # the model is put once and fetched by each worker; the driver holds it to the end, for restarts
    model = ray.put(encoder)
    actors = _start_workers(ray, model, opts, jobs)
    pool = ray.util.ActorPool(actors)
    for job in jobs:
        pool.submit(lambda a, j: a.embed.remote((j.shard, j.replace), [f.path for f in j.files]), job)
    by_key = {(job.shard, job.replace): job for job in jobs}
    counts = (0, 0, 0)
    files = sum(len(j.files) for j in jobs)
    bar = tqdm(total=files, unit="img", desc="embed (ray)", disable=not opts.progress)
    try:
        with bar:
            for _ in jobs:
                key, part = _next_result(ray, pool)
                done = commit_job(out, by_key[key], part, publish)
                counts = tuple(a + b for a, b in zip(counts, done, strict=True))
                bar.update(part.count)
    finally:
        for actor in actors:
            ray.kill(actor)
    return counts


def _start_workers(ray: Any, model: Any, opts: EmbedOptions, jobs: list[ShardJob]) -> list[Any]:
    """One actor per GPU of the cluster (or per CPU without GPUs, or with device "cpu"), no more
    than there are jobs, each holding the model once."""
    gpus = 0 if str(opts.device) == "cpu" else int(ray.cluster_resources().get("GPU", 0))
    per_node = max((int(n["Resources"].get("GPU", 0)) for n in ray.nodes() if n["Alive"]), default=0)
    count = min(gpus or int(ray.cluster_resources().get("CPU", 1)), len(jobs))
    worker = ray.remote(ShardWorker).options(
        num_cpus=1, num_gpus=1 if gpus else 0, max_restarts=RETRIES, max_task_retries=RETRIES
    )
    opts = dataclasses.replace(opts, device="cuda" if gpus else "cpu", progress=False, announce=False)
    items = sum(len(j.files) for j in jobs)
    # in a list, the ref is handed over as it is (a restarted worker fetches the model again)
    return [worker.remote([model], opts, items, per_node, CRASH_ONCE) for _ in range(max(1, count))]


def _next_result(ray: Any, pool: Any) -> tuple[Key, Embedded]:
    """The next shard a worker finished, in any order."""
    try:
        return pool.get_next_unordered()
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, MsfkitError):  # a user error in a worker: its one line
            raise MsfkitError(str(e.cause)) from None
        raise
