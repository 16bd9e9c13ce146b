"""Committing one embedded job to a store: a new shard, or the replaced rows of changed files.

The driver of any engine calls `commit_job` for each job as its part arrives (a local run, each
torchrun rank, or the Ray driver), so every engine writes the same store; `publish`, when given, is
called with the shard's number once it is committed (a store at a URL pushes it: `msfkit.store.remote`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from msfkit.embedding.changes import commit_replacement
from msfkit.embedding.pipeline import Embedded
from msfkit.embedding.plan import ShardJob
from msfkit.store import writer
from msfkit.store.shards import FACT_COLUMNS


def commit_job(
    out: Path, job: ShardJob, part: Embedded, publish: Callable[[int], None] | None = None
) -> tuple[int, int, int]:
    """Commit one job's embedded part to the store `out`: a new shard, or the replaced rows of its
    changed files, then `publish(shard)`. (embedded, failed, replaced) counts."""
    if job.replace:
        replaced = commit_replacement(out, job.shard, job.files, part)
        counts = 0, part.count - replaced, replaced
    else:
        write_new_shard(out, job, part)
        counts = len(part.index), len(part.failed), 0
    if publish is not None:
        publish(job.shard)
    return counts


def write_new_shard(out: Path, job: ShardJob, part: Embedded) -> None:
    """Write shard `job.shard`: the embedded files' vectors and meta rows, in order, and its errors."""
    good = [job.files[i] for i in part.index]
    meta = {"path": [f.rel for f in good], "label": [f.label for f in good]}
    meta |= {column: [getattr(facts, column) for facts in part.facts] for column in FACT_COLUMNS}
    errors = [(job.files[i].rel, reason) for i, reason in part.failed]
    writer.write_shard(out, job.shard, part.vectors, meta, errors)
