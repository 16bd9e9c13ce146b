"""The ONE embedding loop: items -> decode (workers) -> crop (workers) -> normalize + model (device).

Every vector msfkit computes comes through `Embedder` or through `Encoder.embed`, which runs the
same `to_rgb` -> `Preprocess.crop` -> `Preprocess.normalize` -> `Encoder.embed_batch` on images in
memory: `msfkit embed` (per store shard), `msfkit.embed`, search queries and evaluation features
alike, so an image gives the same vector whichever entry point it came through.

    embedder = Embedder(encoder, EmbedOptions(), items=len(paths))   # the model, ready on its device
    for part in embedder.run(paths, sizes=[4096, 4096, 1000]):       # one `Embedded` per part, in order
        ...                                                           # e.g. commit it as a store shard

The loop writes nothing: what happens to a part (a store shard committed, rows replaced, vectors
returned) is its caller's (`msfkit.embedding.run`). A worker that holds the model embeds one shard
with `embedder.run(shard_paths, [len(shard_paths)])`.

Draft decoding (`draft=True`, `msfkit embed --draft`) lets the JPEG decoder scale a large photo
down by 2, 4 or 8 while its shorter side stays >= the resize: much faster on camera photos, within
about 0.99 cosine of the exact vector. It is off by default everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from msfkit.data.images import DEFAULT_MAX_PIXELS
from msfkit.embedding.decode import chunks, decode_batches
from msfkit.embedding.eta import job_line
from msfkit.embedding.forward import COMPILE_MIN_BATCHES, Forward
from msfkit.models import Encoder
from msfkit.models.runtime import evaluating, resolve_precision
from msfkit.store.format import EmbedSettings
from msfkit.store.shards import FileFacts


@dataclass
class EmbedOptions:
    """How images are turned into vectors; the same defaults for every entry point."""

    batch_size: int | None = None  # None: 256 on a GPU, 32 on a CPU
    workers: int | None = None  # decoding processes; None: chosen from the device and the cores
    precision: str = "fp32"  # or "bf16" (autocast), or "auto": resolved when the options are made
    device: str | torch.device | None = None  # None: where the encoder is
    draft: bool = False  # JPEG draft decoding (see the module docstring)
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused before decoding
    compiled: bool | None = None  # CPU: the AOT-compiled model; None: for >= COMPILE_MIN_BATCHES batches
    progress: bool = False  # a progress bar on stderr
    announce: object = False  # before a long job, one line on stderr: images, model, device, time (eta.py)

    def __post_init__(self) -> None:
        # "auto" becomes fp32 or bf16 here, once, for the device asked for: what a store records
        self.precision = resolve_precision(self.precision, self.device)

    @classmethod
    def like(cls, settings: EmbedSettings, **options) -> EmbedOptions:
        """Options that compute vectors as a store with these `settings` did (queries of an index)."""
        return cls(precision=settings.precision, draft=settings.draft, **options)

    def use_compiled(self, batches: int, training: bool = False) -> bool:
        """Whether a job of `batches` batches runs the compiled model (on a CPU; see `forward`). Unless
        told, a model in training mode (one being trained, as the k-NN monitor's) stays eager: its
        weights change before its next job, so a compile would serve one job only."""
        if self.compiled is not None:
            return self.compiled
        return batches >= COMPILE_MIN_BATCHES and not training


@dataclass
class Embedded:
    """What the loop computed for one part of its items, positions counted from the part's start."""

    index: list[int] = field(default_factory=list)  # the items embedded, in order: rows of `vectors`
    vectors: np.ndarray | None = None  # float32 (len(index), D), unit rows
    facts: list[FileFacts] = field(default_factory=list)  # what each embedded item's file is
    failed: list[tuple[int, str]] = field(default_factory=list)  # (position, reason), in order

    @property
    def count(self) -> int:
        return len(self.index) + len(self.failed)


class Embedder:
    """An encoder on its device, in eval mode, with its forward pass built once (compiled on a CPU for
    a job of `items` that fills `COMPILE_MIN_BATCHES` batches, see `EmbedOptions.use_compiled`), ready
    to run the loop over any number of item lists."""

    def __init__(
        self,
        encoder: Encoder,
        opts: EmbedOptions,
        items: int,
        *,
        label: str = "features",
        leave: bool = False,
        local_ranks: int = 1,
    ) -> None:
        """`label`, `leave`: the progress bar's (shown with `opts.progress`); `local_ranks`: processes
        on this machine, which share its cores for decoding."""
        self.encoder, self.opts, self.label, self.leave = encoder, opts, label, leave
        self.local_ranks = local_ranks
        own = next(encoder.parameters()).device
        self.device = torch.device(opts.device) if opts.device is not None else own
        self.batch_size = opts.batch_size or default_batch_size(self.device)
        self.compiled = opts.use_compiled(-(-items // self.batch_size), encoder.training)
        self.forward: Forward | None = None  # built while the first items decode

    def run(self, source, sizes: Sequence[int]) -> Iterator[Embedded]:
        """Embed `source` (paths, or a dataset with `image(i)`) cut into consecutive parts of `sizes`
        items; yield each part's `Embedded` as soon as its last batch is done, in order."""
        opts, n = self.opts, sum(sizes)
        workers = opts.workers
        if workers is None:  # decode in this process unless there is more than one batch
            workers = default_workers(self.device, self.local_ranks) if n > self.batch_size else 0
        starts = np.cumsum([0, *sizes]).tolist()
        batches = [b for j in range(len(sizes)) for b in chunks(starts[j], starts[j + 1], self.batch_size)]
        bar = tqdm(total=n, unit="img", desc=self.label, disable=not opts.progress, leave=self.leave)
        line = job_line(opts.announce, n, self.encoder.config.arch, self.device)
        with evaluating(self.encoder, self.device), torch.inference_mode(), bar:
            stream = decode_batches(
                source,
                self.encoder.preprocess,
                batches,
                workers,
                max_pixels=opts.max_pixels,
                draft=opts.draft,
                pin_memory=self.device.type == "cuda",
            )
            if self.forward is None:  # built while the workers decode the first batches
                self.forward = Forward(self.encoder, opts.precision, self.batch_size, self.compiled)
            if line is not None:
                line.run_started()
            part, rows, j = Embedded(), [], 0
            while j < len(sizes) and sizes[j] == 0:  # parts of no items
                yield Embedded(vectors=self._join([]))
                j += 1
            for batch in stream:
                first = starts[j]
                if batch.pixels is not None:
                    rows.append(self.forward(batch.pixels))
                    part.index += [i - first for i in batch.index]
                    part.facts += batch.facts
                part.failed += [(i - first, reason) for i, reason in batch.failed]
                bar.update(len(batch.index) + len(batch.failed))
                if line is not None:
                    line.batch(len(batch.index) + len(batch.failed))
                while j < len(sizes) and part.count == sizes[j]:  # a part is whole (then any empty ones)
                    part.vectors = self._join(rows)
                    yield part
                    part, rows, j = Embedded(), [], j + 1

    def _join(self, rows: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(rows) if rows else np.zeros((0, self.encoder.embedding_dim), np.float32)


def embed_items(
    encoder: Encoder, source, opts: EmbedOptions | None = None
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """(float32 (n_good, D) vectors in source order, [(position, reason)] of the items that failed).

    Nothing is written. `source`: image paths, or a dataset with `image(i)` and `__len__`.
    Decodes in the calling process unless there is more than one batch (or `opts.workers` says).
    """
    opts = opts or EmbedOptions()
    (part,) = Embedder(encoder, opts, len(source)).run(source, [len(source)])
    return part.vectors, part.failed


def default_batch_size(device: torch.device) -> int:
    """Large enough to keep a GPU busy; small enough on a CPU that the first rows come quickly."""
    return 256 if device.type == "cuda" else 32


def default_workers(device: torch.device, local_ranks: int = 1) -> int:
    """Decoding processes per rank: most cores on a GPU machine; on a CPU, leave cores to the model."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    per_rank = max(1, cpus // max(1, local_ranks))
    if device.type == "cuda":
        return min(per_rank, 16)
    return max(1, per_rank // 2)
