"""The model's side of the embedding loop: uint8 batches -> L2-normalised float32 rows, eagerly or,
on a CPU, compiled by `torch.compile` (inductor, the weights frozen into the graph).

The compiled path is the one fast path; eager PyTorch is its fallback. Compiling a ResNet50 costs
about 20 s the first time on two cores and a few seconds once the compiled pieces are in the
persistent cache (`msfkit.sizes.cache_dir("inductor")`, unless TORCHINDUCTOR_CACHE_DIR says
otherwise); after that the forward ran 183 ResNet50 images/s against eager's 54 (bf16, batch 32).
These figures, here and in `COMPILE_MIN_BATCHES`' comment, were measured on a 2-core Intel Xeon
with AMX (reported in issue 26), not on an AMD CPU without AMX; `bench/embed.py` measures both paths
on the machine at hand (BENCHMARKS.md, Embedding). So a job compiles only when it has
`COMPILE_MIN_BATCHES` batches or more.
"""

from __future__ import annotations

import itertools
import os
import sys

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from msfkit.models import Encoder
from msfkit.sizes import cache_dir

# Below this many batches a job stays eager. At 32 images a batch the compiled ResNet50 saves about
# 13 ms an image (54 -> 183 images/s, bf16), so 16 batches (512 images) repay a compile from the
# warm cache (about 7 s); a first, cold compile (about 20 s) is repaid by ~1,500 images, and by
# every later job on this machine through the cache.
COMPILE_MIN_BATCHES = 16
_JOBS = itertools.count()  # one number per Forward: the compiled graph it may run (see _Embed.forward)


class _Embed(nn.Module):
    """uint8 pixels -> unit float32 features: `Preprocess.normalize` then `Encoder.embed_batch`, the
    function both paths run (the compiled one fuses the normalisation into the first convolution)."""

    def __init__(self, encoder: Encoder, precision: str) -> None:
        super().__init__()
        self.encoder, self.prep, self.precision = encoder, encoder.preprocess, precision
        self.job = next(_JOBS)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # Read while dynamo traces, `job` is guarded: a frozen graph holds the weights as they were
        # when it compiled, so it serves this Forward only, never a later job whose model is another
        # or the same one trained further in place (the k-NN monitor's).
        if self.job < 0:
            raise ValueError("a job number is never negative")
        return self.encoder.embed_batch(self.prep.normalize(pixels), self.precision)


class Forward:
    """uint8 batches -> L2-normalised float32 numpy rows, as `Encoder.embed_batch` computes them.

    `compiled=True` (CPU only) runs `torch.compile` of the model with inductor freezing: batch
    norms folded into the convolutions, weights packed for oneDNN once, pointwise work fused. The
    graph has one shape, `batch_size` rows: a shorter batch (the last one, or one with bad files)
    is padded with zero images and the pad rows dropped, so nothing recompiles mid-run. Each Forward
    compiles its own graph, for the weights as they are (later ones in a process reuse the cached
    kernels; past torch's recompile limit, 8 per process, dynamo runs them eagerly). A compile that
    fails (no C++ compiler, an unsupported model) says so in one line on stderr and the job runs
    eagerly. Features agree with eager within ~1e-5 in fp32 and cosine >= 0.999 in bf16.
    """

    def __init__(self, encoder: Encoder, precision: str, batch_size: int, compiled: bool = False) -> None:
        self.embed, self.batch_size = _Embed(encoder, precision), batch_size
        self.device = next(encoder.parameters()).device
        self.graph = _compile(self.embed) if compiled and self.device.type == "cpu" else None
        self.ran = False  # whether the compiled graph has run once: a later error is no compile error
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels

    @property
    def compiled(self) -> bool:
        """Whether batches go through the compiled graph (False before building it, or after it failed)."""
        return self.graph is not None

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
            reason = " ".join(f"{type(e).__name__}: {e}".split())[:300]  # one line, however long
            tqdm.write(f"msfkit: compiling the model failed, running it eagerly ({reason})", file=sys.stderr)
            self.graph = None
            return self(pixels)
        self.ran = True
        return np.concatenate(rows)

    def _padded(self, pixels: torch.Tensor) -> np.ndarray:
        """One batch through the graph at its one shape: padded to `batch_size`, the pad rows dropped."""
        n = len(pixels)
        # a new tensor every time, so every batch is alike to dynamo's guards: an inference tensor
        # (a batch made outside inference mode, by a decoding worker, would not be) of one shape
        batch = pixels.new_zeros((self.batch_size, *pixels.shape[1:]))
        batch[:n] = pixels
        # freezing is read while dynamo traces too: it then guards on the identity of the weights it
        # folds in, so another model never gets this graph (the job number: the same one changed)
        # torch's compiler, imported by the compiled path alone: it imports torch._dynamo (1.3 s), which
        # a query image on the eager path never needs
        from torch._inductor import config as inductor_config  # loads torch

        with inductor_config.patch(freezing=True):
            return self.graph(batch)[:n].cpu().numpy()


def _compile(module: nn.Module) -> nn.Module:
    """`module` compiled for CPU inference: inductor, one static shape, the default mode (max-autotune
    would benchmark matmul templates at compile time, for minutes on two cores, for the one linear
    layer a ResNet has; reduce-overhead is CUDA graphs). The compile itself happens on the first call."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir("inductor")))
    return torch.compile(module, dynamic=False)
