"""Planning a run into a store (the driver's side, rank 0): which shards hold which files.

The files not yet in the store, sorted, are cut into shards of `shard_rows`: shard base + j holds
positions [j*shard_rows, (j+1)*shard_rows), where base is the first free shard number. The plan
(base, hash of the file list) is saved in the manifest before any shard is written, so a rerun
after a kill (SIGKILL included) finds the same shards, skips the committed ones and redoes the
rest: every file ends up exactly once, in the same order as an uninterrupted run. Files changed
since they were embedded are jobs of their own: their rows are replaced in place (`changes`).

`plan_run` returns `ShardJob`s; whoever runs them (every rank of a local run, or workers holding
the model) embeds each job's files with the one loop (`pipeline.Embedder`) and commits it
(`commit.commit_job`).
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msfkit.data.inputs import Listing, SourceFile, list_inputs
from msfkit.data.tables import TableOptions
from msfkit.embedding.changes import find_changes
from msfkit.models import Encoder
from msfkit.models.errors import MsfkitError
from msfkit.models.hub import parse_hub_id
from msfkit.models.identity import check_same_model
from msfkit.store import writer
from msfkit.store.format import (
    EmbedSettings,
    Manifest,
    ModelRecord,
    RunPlan,
    now,
    read_manifest,
    shard_name,
    write_manifest,
)
from msfkit.store.shards import committed_shards, shard_paths

DEFAULT_SHARD_ROWS = 4096
ENGINES = ("local", "ray")  # who embeds the shards: this process (and its torchrun ranks), or Ray workers


@dataclass
class StoreOptions:
    """What `embed` does with the store folder (the vectors themselves: `EmbedOptions`)."""

    shard: tuple[int, int] | None = None  # (i, n): this machine's slice, written to out/part-i-of-n
    overwrite: bool = False  # replace a store of another model, source or settings
    strict: bool = False  # raise after the run when any file could not be embedded
    shard_rows: int = DEFAULT_SHARD_ROWS  # files per committed shard
    engine: str = "local"  # or "ray": shards embedded by Ray workers, committed here (ray_engine.py)
    address: str | None = None  # the Ray cluster: "auto", HOST:PORT; None: RAY_ADDRESS or a new one
    tables: TableOptions = TableOptions()  # the image and label columns of table inputs
    storage_options: dict[str, Any] = field(default_factory=dict)  # fsspec options for URL inputs and out

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise MsfkitError(f"engine {self.engine!r}: expected one of {', '.join(ENGINES)}")
        s = self.shard
        if s is not None and not (s[1] >= 1 and 0 <= s[0] < s[1]):
            raise MsfkitError(f"--shard {s[0]}/{s[1]}: expected i/n with 0 <= i < n")
        if self.shard_rows < 1:
            raise MsfkitError("shard_rows must be >= 1")


@dataclass
class ShardJob:
    """One unit of work: the files of store shard `shard`, embedded in this order."""

    shard: int
    files: list[SourceFile]
    replace: bool = False  # the changed files of committed shard `shard`: their rows are replaced


@dataclass
class Planned:
    """A run's plan: its jobs (changed files' rows first, then the new shards, in shard order) and
    what it found."""

    base: int  # the first new shard's number
    jobs: list[ShardJob]
    skipped: int  # files already in the store (embedded or failed) and unchanged
    gone: int  # embedded files that no longer exist
    unreadable: int  # folders that could not be listed

    def for_rank(self, rank: int, world: int) -> list[ShardJob]:
        """Rank r's jobs under torchrun: shards base + r, base + r + world, ... (and replacements
        of shards k with k % world == r)."""
        return [j for j in self.jobs if (j.shard if j.replace else j.shard - self.base) % world == rank]


def plan_run(
    inputs: Sequence[str | Path], encoder: Encoder, out: Path, store: StoreOptions, settings: EmbedSettings
) -> Planned:
    """Check or create the store (locking it), decide which shards hold which files, and save the
    plan in its manifest."""
    listing = list_inputs(inputs, store.tables)
    for folder in listing.unreadable:
        print(f"warning: cannot read the folder {folder}; its images are not embedded", file=sys.stderr)
    if store.shard is not None:
        i, n = store.shard
        files = listing.files
        part = files[i * len(files) // n : (i + 1) * len(files) // n]
        listing = Listing(listing.root, part, listing.unreadable if i == 0 else [])  # counted once, in part 0
    manifest = _open_for_writing(out, encoder, listing.root, store, settings)
    committed = committed_shards(out)
    old = manifest.plan
    if old and not manifest.complete and old.listing_hash == listing.hash:
        base = old.base  # resume the interrupted plan exactly, so shard contents match
        earlier = [k for k in committed if k < base]
    else:
        base = committed[-1] + 1 if committed else 0
        earlier = committed
    done = {p for k in earlier for p in shard_paths(out, k)}
    left = [f for f in listing.files if f.rel not in done]
    rows = store.shard_rows
    planned = {base + j: left[j * rows : (j + 1) * rows] for j in range((len(left) + rows - 1) // rows)}
    todo = [ShardJob(k, files) for k, files in planned.items() if k not in committed]
    changes = find_changes(out, committed, listing)
    # the shards whose rows this run replaces: readers hash them differently until the run completes
    replace = [shard_name(k) for k in sorted(changes.changed)]
    manifest.plan = RunPlan(
        base, len(planned), len(listing.files), listing.hash, replace, secrets.token_hex(8)
    )
    manifest.complete, manifest.updated = False, now()
    write_manifest(out, manifest)
    jobs = [ShardJob(k, files, replace=True) for k, files in sorted(changes.changed.items())]
    skipped = len(listing.files) - sum(len(j.files) for j in todo) - changes.count
    return Planned(base, jobs + todo, skipped, changes.gone, len(listing.unreadable))


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


def _open_for_writing(
    out: Path, encoder: Encoder, source_root: Path | str, store: StoreOptions, settings: EmbedSettings
) -> Manifest:
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
    model = ModelRecord(
        loadable_name(encoder), encoder.revision, encoder.fingerprint, encoder.config.to_dict()
    )
    return Manifest.new(model, encoder.embedding_dim, source_root, part=store.shard, settings=settings)


def _check_same(
    out: Path, manifest: Manifest, encoder: Encoder, source_root: Path | str, settings: EmbedSettings
) -> None:
    fix = "use --force to replace it, or another -o"
    check_same_model(manifest.model, encoder, f"the store {out}", "this run's model", fix)
    if manifest.source_root != str(source_root):
        raise MsfkitError(f"{out} holds images of {manifest.source_root}, not {source_root}; {fix}")
    for key, value in vars(settings).items():
        recorded = getattr(manifest.settings, key, None)
        if recorded != value:
            raise MsfkitError(f"{out} was embedded with {key}={recorded}, not {value}; {fix}")
