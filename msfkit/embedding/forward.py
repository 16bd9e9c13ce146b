"""The model's side of the embedding loop: uint8 batches -> L2-normalised float32 rows, eagerly or,
on a CPU, through the model compiled ahead of time by AOTInductor (`aoti`: weights frozen into it).

The packaged model is the one fast path; eager PyTorch is its fallback. The first job of a model
(for one precision, batch size and input size, on one CPU) builds the package: exporting and
compiling a ResNet50 at 224, batch 32, took 62 s in fp32 and 49-81 s in bf16 on a 2-core AMD
EPYC (AVX-512 BF16, no AMX) shared with other work. Every later process loads it in about 0.5 s,
hashing the weights for the key included, without importing torch's compiler. Compiled, the
forward ran 44 ResNet50 images/s against eager's 33 (bf16, batch 32) and 23 against 15 (fp32) on
that CPU (BENCHMARKS.md, Embedding, measured with `torch.compile` and the same inductor freezing);
`bench/embed.py` measures both paths, the build and the load on the machine at hand. So a job
takes the fast path only when it has `COMPILE_MIN_BATCHES` batches or more.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from msfkit.embedding import aoti
from msfkit.models import Encoder

# Below this many batches a job stays eager. At 32 images a batch the compiled ResNet50 saves about
# 8 ms an image in bf16 (33 -> 44 images/s) and 24 ms in fp32 (15 -> 23) on that AMD CPU: a loaded
# package (0.5 s) is repaid within 2 batches, and 16 (512 images) repay a first build (50-80 s)
# in part, the rest by every later job of that model on this machine, which only loads it.
COMPILE_MIN_BATCHES = 16


class _Embed(nn.Module):
    """uint8 pixels -> unit float32 features: `Preprocess.normalize` then `Encoder.embed_batch`, the
    function both paths run (the packaged one fuses the normalisation into the first convolution)."""

    def __init__(self, encoder: Encoder, precision: str) -> None:
        super().__init__()
        self.encoder, self.prep, self.precision = encoder, encoder.preprocess, precision

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed_batch(self.prep.normalize(pixels), self.precision)


class Forward:
    """uint8 batches -> L2-normalised float32 numpy rows, as `Encoder.embed_batch` computes them.

    `compiled=True` (CPU only) runs the model's AOTInductor package (`aoti`), loaded from msfkit's
    cache or built there first, for the weights as they are now: a model trained further since (the
    k-NN monitor's) has other weights, so another package. It has one shape, `batch_size` rows: a
    shorter batch (the last one, or one with bad files) is padded with zero images and the pad rows
    dropped. A package that cannot be built (no C++ compiler, an unsupported model) or loaded (a
    truncated file, then removed from the cache) says so in one line on stderr and the job runs
    eagerly. Features agree with eager within ~1e-5 in fp32 and cosine >= 0.999 in bf16.
    """

    def __init__(self, encoder: Encoder, precision: str, batch_size: int, compiled: bool = False) -> None:
        self.embed, self.batch_size = _Embed(encoder, precision), batch_size
        self.device = next(encoder.parameters()).device
        self.graph = None
        self.setup: tuple[str, float] | None = None  # ("built" or "loaded", seconds) of the package
        self.ran = False  # whether the package has run once: a later error is no package error
        if compiled and self.device.type == "cpu":
            self._package()
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels

    @property
    def compiled(self) -> bool:
        """Whether batches go through the packaged model (False without one, or after it failed)."""
        return self.graph is not None

    def package_path(self) -> Path:
        """Where this Forward's package is, or would be, in msfkit's cache: for its weights as they are."""
        return aoti.package_path(*self._package_spec())

    def _package(self) -> None:
        try:
            self.graph, done, seconds = aoti.packaged(*self._package_spec())
            self.setup = (done, seconds)
        except Exception as e:
            what = "loading" if isinstance(e, aoti.PackageError) else "compiling"
            self._fall_back(f"{what} the model failed", e)

    def _package_spec(self) -> tuple[nn.Module, torch.Tensor, dict, list[type]]:
        """What `aoti` compiles and keys a package by: the module, an input of the one shape, the
        facts it depends on besides the weights, the classes it runs besides the module's."""
        prep, encoder = self.embed.prep, self.embed.encoder
        example = torch.zeros((self.batch_size, 3, prep.image_size, prep.image_size), dtype=torch.uint8)
        facts = {
            "config": encoder.config.to_dict(),
            "preprocess": repr(prep),
            "precision": self.embed.precision,
        }
        return self.embed, example, facts, [type(prep)]

    def _fall_back(self, what: str, e: Exception) -> None:
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:300]  # one line, however long
        tqdm.write(f"msfkit: {what}, running it eagerly ({reason})", file=sys.stderr)
        self.graph = None

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        pixels = pixels.to(self.device, non_blocking=True)
        if self.graph is None:
            return self.embed(pixels).cpu().numpy()
        try:
            rows = [self._padded(part) for part in pixels.split(self.batch_size)]
        except Exception as e:
            if self.ran:
                raise
            self._fall_back("running the compiled model failed", e)
            return self(pixels)
        self.ran = True
        return np.concatenate(rows)

    def _padded(self, pixels: torch.Tensor) -> np.ndarray:
        """One batch through the package at its one shape: padded to `batch_size`, the pad rows dropped."""
        n = len(pixels)
        batch = pixels.new_zeros((self.batch_size, *pixels.shape[1:]))
        batch[:n] = pixels
        return self.graph(batch)[:n].cpu().numpy()
