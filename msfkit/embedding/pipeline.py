"""Image files -> model-ready batches, decoded in parallel DataLoader workers while the model runs.

Workers do the expensive part (JPEG decode, optionally in draft mode; resize; crop) and send
uint8 crops, a quarter of the bytes of float tensors; the main process turns them into
normalised floats on the model's device (`Preprocess.normalize`). A file that cannot be decoded
comes back as its reason, never as an exception, so one bad file cannot stop a run.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from msfkit.data.images import DEFAULT_MAX_PIXELS, BadImageError, decode_image
from msfkit.models import Encoder


@dataclass
class Preprocess:
    """The model config's eval preprocessing, split into a worker half (uint8) and a device half."""

    resize: int
    image_size: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    draft: bool = True  # JPEG draft decoding: scale down by 2/4/8 while the shorter side stays >= resize
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def for_encoder(
        cls, encoder: Encoder, draft: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> Preprocess:
        c = encoder.config
        return cls(c.resize, c.image_size, c.interpolation, c.mean, c.std, draft, max_pixels)

    def __post_init__(self) -> None:
        from torchvision import transforms as T

        # Same Resize and CenterCrop as Encoder.transform(); to_rgb already ran in decode_image.
        self._crop = T.Compose(
            [
                T.Resize(self.resize, interpolation=T.InterpolationMode(self.interpolation)),
                T.CenterCrop(self.image_size),
                T.PILToTensor(),
            ]
        )

    def load(self, path: str) -> tuple[torch.Tensor, tuple[int, int, int, float]]:
        """(uint8 (3, S, S) crop, (width, height, bytes, mtime)) of one file; raises BadImageError."""
        decoded = decode_image(
            path, max_pixels=self.max_pixels, draft_size=self.resize if self.draft else None
        )
        try:
            crop = self._crop(decoded.image)
        except Exception as e:  # a pathological size (e.g. 1 x 100000) can break the resize
            raise BadImageError(f"cannot resize: {type(e).__name__}: {e}") from None
        return crop, (decoded.width, decoded.height, decoded.bytes, decoded.mtime)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, S, S) on any device -> float32 normalised exactly as ToTensor + Normalize do."""
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return x.float().div_(255).sub_(mean).div_(std)


@dataclass
class Batch:
    """Decoded files of one batch; `index` positions refer to the file list given to `iter_batches`."""

    index: list[int]  # the files that decoded, in order; rows of `pixels`
    pixels: torch.Tensor | None  # uint8 (len(index), 3, S, S), None when every file failed
    info: list[tuple[int, int, int, float]]  # (width, height, bytes, mtime) per decoded file
    failed: list[tuple[int, str]]  # (position, reason) per file that could not be decoded


class _Files(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str], prep: Preprocess) -> None:
        self.paths, self.prep = paths, prep

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            crop, info = self.prep.load(self.paths[i])
        except BadImageError as e:
            return i, None, str(e)
        return i, crop, info


def _collate(items) -> Batch:
    good = [(i, x, info) for i, x, info in items if x is not None]
    failed = [(i, reason) for i, x, reason in items if x is None]
    pixels = torch.stack([x for _, x, _ in good]) if good else None
    return Batch([i for i, _, _ in good], pixels, [info for _, _, info in good], failed)


def iter_batches(
    paths: Sequence[str],
    prep: Preprocess,
    batches: Sequence[Sequence[int]],
    workers: int,
    pin_memory: bool = False,
) -> Iterator[Batch]:
    """Decode `paths` in the given batches of positions (in order), with `workers` processes.

    The workers start, and begin decoding ahead, as soon as this returns.
    """
    loader = torch.utils.data.DataLoader(
        _Files(paths, prep),
        batch_sampler=[list(b) for b in batches],
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
    )
    return iter(loader)


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

    def __init__(self, encoder: Encoder, prep: Preprocess, precision: str, frozen: bool = False) -> None:
        self.encoder, self.prep, self.precision = encoder, prep, precision
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
            warnings.simplefilter(
                "ignore", FutureWarning
            )  # torch.jit is deprecated but still the fastest here
            return torch.jit.freeze(torch.jit.trace(self.encoder.backbone, example, check_trace=False))
