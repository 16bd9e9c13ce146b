"""Building an AOTInductor package (`aoti`'s slow half): `torch.export` of the module at one input
shape, compiled by inductor with freezing into one `.pt2` file. Imported only to build, since it
imports torch's compiler (torch._inductor, torch._dynamo)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch._inductor import aoti_compile_and_package
from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir


def build(module: nn.Module, example: torch.Tensor, out: Path) -> None:
    """Export `module` at `example`'s one shape and compile it into the package file `out`, with
    inductor's freezing (applied only where autograd is off). Inductor's working files (its cache,
    the generated code, libraries and weights) go to a temporary folder: the package holds what is
    kept, and a build leaves nothing else behind (so it redoes inductor's checks of the CPU, some
    seconds, rare beside the build)."""
    with torch.inference_mode(False), torch.no_grad(), _quiet(), tempfile.TemporaryDirectory() as work:
        program = torch.export.export(module, (torch.zeros_like(example),))
        with temporary_cache_dir(work), out.open("w+b") as f:
            aoti_compile_and_package(program, package_path=f, inductor_configs={"freezing": True})


@contextmanager
def _quiet() -> Iterator[None]:
    """Without the warning torch's C++ builder logs on a machine with no CUDA ("No CUDA runtime is
    found"): the build is for the CPU."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
