"""The model compiled ahead of time: `torch.export` + AOTInductor, packaged once into msfkit's cache
(`msfkit.sizes.cache_dir("aoti")`) and loaded by every later process in a fraction of a second.

A package is one file, `<key>.pt2`: a shared library holding the kernels and the weights folded into
them (inductor's freezing: batch norms folded into the convolutions, bf16 copies made once). Its key
hashes everything the compiled code depends on: every parameter and buffer, the source of the
module classes it runs, the caller's facts (model config, preprocessing, precision), the input's
shape and dtype, torch's version and thread count (the kernels' OpenMP teams are sized at compile
time) and the CPU (model name, the ISA flags that matter: avx2, avx512f, avx512_bf16, amx, and the
ISA torch and oneDNN are limited to), so a
model trained further, another machine or another torch never loads a package built for other
weights, CPUs or code. The cache is the user's own, as inductor's is: a package is native code run
as it is, from a folder only msfkit writes. A file that cannot be loaded (truncated, corrupt) is
removed, so that the next job builds it again.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from msfkit._version import __version__
from msfkit.models.files import atomic_write
from msfkit.models.runtime import cpu_flags_line, onednn_isa_limit
from msfkit.sizes import cache_dir

FORMAT = 1  # raised when what a package holds, or how it is called, changes


class PackageError(Exception):
    """A cached package that could not be loaded (it has been removed)."""


def package_path(module: nn.Module, example: torch.Tensor, facts: dict, code: Iterable[type] = ()) -> Path:
    """Where the package of `module` for inputs like `example` lives: a file named by its key.
    `facts`: what else decides the compiled code (JSON values); `code`: classes whose methods it
    runs besides `module`'s own (their source files are hashed with those of `module`'s classes)."""
    key = hashlib.sha256()
    files = {inspect.getfile(c) for c in [*(type(m) for m in module.modules()), *code]}
    described = {
        "format": FORMAT,
        "msfkit": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_flags_line(),
        # the ISA torch and oneDNN are allowed here (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA can
        # lower it below the CPU's flags): the kernels are generated and the weights packed for it
        "isa": [torch.backends.cpu.get_cpu_capability(), onednn_isa_limit()],
        "input": [list(example.shape), str(example.dtype)],
        "training": [m.training for m in module.modules()],
        "code": sorted(hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files),
        **facts,
    }
    key.update(json.dumps(described, sort_keys=True, default=str).encode())
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        t = _dense(tensor.detach().cpu())
        key.update(f"{name} {t.dtype} {list(t.shape)}".encode())
        key.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return cache_dir("aoti") / f"{key.hexdigest()[:32]}.pt2"


def _dense(t: torch.Tensor) -> torch.Tensor:
    """`t` as a contiguous tensor of the same bytes without a copy where it is channels-last (the
    convolution weights of a channels-last model: a copy of each made the key 2x slower)."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1)
    return t.contiguous()


def packaged(
    module: nn.Module, example: torch.Tensor, facts: dict, code: Iterable[type] = ()
) -> tuple[Callable, str, float]:
    """(`module` compiled for inputs shaped as `example`, "built" or "loaded", the seconds that took):
    the cached package loaded, or built and cached first. Raises what a build raises (no C++
    compiler, an operator export cannot capture), or `PackageError` for a cached file that does not
    load. `facts`, `code`: as for `package_path`."""
    start = time.perf_counter()
    path = package_path(module, example, facts, code)
    if path.is_file():
        try:
            return _load(path), "loaded", time.perf_counter() - start
        except Exception as e:
            path.unlink(missing_ok=True)
            raise PackageError(
                f"the cached package {path} does not load; removed ({type(e).__name__}: {e})"
            ) from e
    # torch's compiler, imported to build alone: it imports torch._dynamo (about 3 s here), which
    # loading a package does not need
    from msfkit.embedding import aoti_build  # loads torch

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: aoti_build.build(module, example, tmp))
    return _load(path), "built", time.perf_counter() - start


def _load(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The package at `path` as a function of its one input: torch's C++ loader, which needs none
    of torch's Python compiler (`torch._inductor.aoti_load_package` would import it, seconds)."""
    loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
    return lambda x: loader.boxed_run([x])[0]
