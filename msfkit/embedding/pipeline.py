"""The ONE feature path: images -> decode (workers) -> crop (workers) -> normalize + model (device).

Every vector msfkit computes comes through here or through `Encoder.embed`, which runs the same
`to_rgb` -> `Preprocess.crop` -> `Preprocess.normalize` -> `Encoder.embed_batch` on images in
memory: `msfkit embed`, `msfkit.embed`, search queries and evaluation features alike, so an image
gives the same vector whichever entry point it came through.

Sources are file paths (decoded with `msfkit.data.images.decode_image`, every bad file a reason)
or a dataset with an `image(i)` method (in-memory arrays, `msfkit.data.datasets`). Workers send
uint8 crops, a quarter of the bytes of floats. A file that cannot be decoded comes back as its
reason, never as an exception, so one bad file cannot stop a run.

Draft decoding (`draft=True`, `msfkit embed --draft`) lets the JPEG decoder scale a large photo
down by 2, 4 or 8 while its shorter side stays >= the resize: much faster on camera photos, within
about 0.99 cosine of the exact vector. It is off by default everywhere.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from msfkit.data.images import DEFAULT_MAX_PIXELS, BadImageError, decode_image
from msfkit.embedding.eta import job_line
from msfkit.models import Encoder
from msfkit.models.preprocess import Preprocess
from msfkit.models.runtime import check_precision, evaluating

FROZEN_MIN_FILES = 256  # below this, building the frozen CPU graph costs more than it saves


@dataclass
class EmbedOptions:
    """How images are turned into vectors; the same defaults for every entry point."""

    batch_size: int | None = None  # None: 256 on a GPU, 32 on a CPU
    workers: int | None = None  # decoding processes; None: chosen from the device and the cores
    precision: str = "fp32"  # or "bf16" (autocast)
    device: str | torch.device | None = None  # None: where the encoder is
    draft: bool = False  # JPEG draft decoding (see the module docstring)
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused before decoding
    frozen: bool | None = None  # CPU: frozen TorchScript graph; None: when there are >= FROZEN_MIN_FILES
    progress: bool = False  # a progress bar on stderr
    announce: object = False  # before a long job, one line on stderr: images, model, device, time (eta.py)

    def __post_init__(self) -> None:
        check_precision(self.precision)

    def use_frozen(self, files: int) -> bool:
        return files >= FROZEN_MIN_FILES if self.frozen is None else self.frozen


@dataclass
class Batch:
    """Decoded items of one batch; `index` positions refer to the source given to `iter_batches`."""

    index: list[int]  # the items that decoded, in order; rows of `pixels`
    pixels: torch.Tensor | None  # uint8 (len(index), 3, S, S), None when every item failed
    info: list[tuple[int, int, int, float, int]]  # (width, height, bytes, mtime, mtime_ns) per decoded item
    failed: list[tuple[int, str]]  # (position, reason) per item that could not be decoded


class _Decode(torch.utils.data.Dataset):
    """Item i -> (i, uint8 crop, info) or (i, None, reason)."""

    def __init__(self, source, prep: Preprocess, opts: EmbedOptions) -> None:
        self.source, self.prep = source, prep
        self.max_pixels, self.draft_size = opts.max_pixels, prep.resize if opts.draft else None

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        try:
            item = self.source[i] if _is_paths(self.source) else None
            if item is not None:
                decoded = decode_image(item, max_pixels=self.max_pixels, draft_size=self.draft_size)
                d = decoded
                image, info = d.image, (d.width, d.height, d.bytes, d.mtime, d.mtime_ns)
            else:
                image = self.source.image(i)
                info = (image.width, image.height, 0, 0.0, 0)
            try:
                crop = self.prep.crop(image)
            except Exception as e:  # a pathological size (e.g. 1 x 100000) can break the resize
                raise BadImageError(f"cannot resize: {type(e).__name__}: {e}") from None
        except BadImageError as e:
            return i, None, str(e)
        return i, crop, info


def _is_paths(source) -> bool:
    return isinstance(source, (list, tuple)) and (not source or isinstance(source[0], (str, os.PathLike)))


def _collate(items) -> Batch:
    good = [(i, x, info) for i, x, info in items if x is not None]
    failed = [(i, reason) for i, x, reason in items if x is None]
    pixels = torch.stack([x for _, x, _ in good]) if good else None
    return Batch([i for i, _, _ in good], pixels, [info for _, _, info in good], failed)


def iter_batches(
    source, prep: Preprocess, batches: Sequence[Sequence[int]], opts: EmbedOptions, workers: int
) -> Iterator[Batch]:
    """Decode `source` (paths, or a dataset with `image(i)`) in the given batches of positions, in
    order, with `workers` processes. The workers start, and decode ahead, as soon as this returns."""
    loader = torch.utils.data.DataLoader(
        _Decode(source, prep, opts),
        batch_sampler=[list(b) for b in batches],
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=torch.device(opts.device or "cpu").type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_worker_init,
    )
    return iter(loader)


def _worker_init(_worker_id: int) -> None:
    from msfkit.store.writer import release_inherited_locks

    release_inherited_locks()


def chunks(start: int, stop: int, size: int) -> list[list[int]]:
    """[start, stop) cut into consecutive lists of at most `size` positions."""
    return [list(range(i, min(i + size, stop))) for i in range(start, stop, size)]


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


class Forward:
    """uint8 batches -> L2-normalised float32 numpy rows, as `Encoder.embed_batch` computes them.

    `frozen=True` (CPU only) runs a frozen TorchScript trace of the backbone instead of eager
    PyTorch: batch norms folded into the convolutions, oneDNN weight layouts packed once. It takes
    a few seconds to build and is then 1.3-4x faster on CPU (bf16 most), with features within
    ~1e-7 of eager fp32; worth it for a collection, not for a handful of queries.
    """

    def __init__(self, encoder: Encoder, precision: str, frozen: bool = False) -> None:
        self.encoder, self.prep, self.precision = encoder, encoder.preprocess, precision
        self.device = next(encoder.parameters()).device
        self.graph = None
        if frozen and self.device.type == "cpu":
            try:
                self.graph = self._freeze()
            except Exception as e:  # an exotic torch build without the JIT: eager still works
                warnings.warn(f"msfkit: running the model eagerly, freezing it failed: {e}", stacklevel=2)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels

    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        x = self.prep.normalize(pixels.to(self.device, non_blocking=True))
        if self.graph is None:
            return self.encoder.embed_batch(x, self.precision).cpu().numpy()
        with self._autocast():
            feats = self.graph(x.contiguous(memory_format=torch.channels_last))
        return torch.nn.functional.normalize(feats.float(), dim=1).numpy()

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _freeze(self):
        size = self.encoder.config.image_size
        example = torch.zeros(2, 3, size, size).contiguous(memory_format=torch.channels_last)
        with warnings.catch_warnings(), self._autocast():
            # torch.jit is deprecated but still the fastest CPU path here
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.freeze(torch.jit.trace(self.encoder.backbone, example, check_trace=False))


def embed_items(
    encoder: Encoder, source, opts: EmbedOptions | None = None
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """(float32 (n_good, D) vectors in source order, [(position, reason)] of the items that failed).

    Nothing is written. `source`: image paths, or a dataset with `image(i)` and `__len__`.
    Decodes in the calling process unless there is more than one batch (or `opts.workers` says).
    """
    from tqdm import tqdm

    opts = opts or EmbedOptions()
    dev = torch.device(opts.device) if opts.device is not None else next(encoder.parameters()).device
    bs = opts.batch_size or default_batch_size(dev)
    n = len(source)
    workers = opts.workers if opts.workers is not None else (default_workers(dev) if n > bs else 0)
    rows, bad = [], []
    bar = tqdm(total=n, unit="img", desc="features", disable=not opts.progress, leave=False)
    line = job_line(opts.announce, n, encoder.config.arch, dev)
    with evaluating(encoder, dev), torch.inference_mode(), bar:
        stream = iter_batches(source, encoder.preprocess, chunks(0, n, bs), opts, workers)
        forward = Forward(encoder, opts.precision, opts.use_frozen(n))
        if line is not None:
            line.run_started()
        for batch in stream:
            if batch.pixels is not None:
                rows.append(forward(batch.pixels))
            bad += batch.failed
            bar.update(len(batch.index) + len(batch.failed))
            if line is not None:
                line.batch(len(batch.index) + len(batch.failed))
    vectors = np.concatenate(rows) if rows else np.zeros((0, encoder.embedding_dim), np.float32)
    return vectors, bad
