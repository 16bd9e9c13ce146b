"""Where and how a model runs, in one place: precision names, device resolution, eval mode.

Everything that runs a network (embedding, evaluation, training, the CLI) resolves a device and
checks a precision here, so one spelling of a mistake gives one message everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from msfkit.models.errors import MsfkitError

PRECISIONS = ("fp32", "bf16")  # what a forward pass can run in; "auto" is offered where a default fits
DEVICES = ("auto", "cpu", "cuda")


def check_precision(precision: str, allowed: tuple[str, ...] = PRECISIONS, what: str = "precision") -> str:
    """`precision` itself, or a one-line MsfkitError naming the choices."""
    if precision not in allowed:
        raise MsfkitError(f"{what} must be one of {', '.join(allowed)}, not {precision!r}")
    return precision


# oneDNN's ISA limits (ONEDNN_MAX_CPU_ISA) below its first with bf16 dot products: a process held to
# one of them computes bf16 without the CPU's bf16 instructions, whatever its flags say
ONEDNN_LIMITS_WITHOUT_BF16 = (
    "SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
)  # fmt: skip


def cpu_has_fast_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU (or the one `cpuinfo`, /proc/cpuinfo's text, describes) computes bf16
    natively, with AVX512-BF16 or AMX: there bf16 autocast is up to 2x faster than float32;
    elsewhere torch emulates it, many times slower than float32 (BENCHMARKS.md). This process's
    answer is no where oneDNN is held below bf16 (ONEDNN_MAX_CPU_ISA=AVX2, for example)."""
    if cpuinfo is None and onednn_isa_limit() in ONEDNN_LIMITS_WITHOUT_BF16:
        return False
    flags = _cpu_flags() if cpuinfo is None else _flags(cpuinfo)
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_flags_line() -> str:
    """This CPU's model name and the flags that decide bf16 speed, for a benchmark's first line; and
    the limits this process runs under, where set: torch's vector ISA (ATEN_CPU_CAPABILITY) and
    oneDNN's (ONEDNN_MAX_CPU_ISA), which make this CPU behave as an older one."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU: unknown (no /proc/cpuinfo)"
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    flags = [f for f in wanted if f in _flags(text)]
    held_below = onednn_isa_limit() in ONEDNN_LIMITS_WITHOUT_BF16
    native = "native bf16" if cpu_has_fast_bf16(text) and not held_below else "bf16 emulated"
    held_by = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
    limits = [f"{var}={os.environ[var]}" for var in held_by if os.environ.get(var)]
    held = f"; held to {', '.join(limits)} (torch's vector ISA {torch.backends.cpu.get_cpu_capability()})"
    return (
        f"CPU: {names[0] if names else 'unknown'}, {len(names)} logical; flags {' '.join(flags)} ({native})"
        + (held if limits else "")
    )


def onednn_isa_limit() -> str:
    """The ISA this process holds oneDNN to (ONEDNN_MAX_CPU_ISA, upper case), "" where unset."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()


@lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """This CPU's flags, read once per process."""
    try:
        return _flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


def _flags(cpuinfo: str) -> frozenset[str]:
    lines = [line for line in cpuinfo.splitlines() if line.startswith("flags")]
    return frozenset(word for line in lines for word in line.split())


def resolve_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch.device; 'auto' is this rank's GPU when torch sees one.

    Asking for CUDA without a visible GPU is a user error, not a silent fall-back to the CPU.
    """
    if isinstance(name, torch.device):
        return name
    if name not in DEVICES and not name.startswith("cuda:"):
        raise MsfkitError(f"device must be auto, cpu or cuda, not {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MsfkitError(f"device {name}: no CUDA device is visible to torch")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name.startswith("cuda:"):
        return torch.device(name)
    return torch.device("cuda", local_rank % torch.cuda.device_count())


@contextmanager
def evaluating(module: nn.Module, device: torch.device | None = None) -> Iterator[nn.Module]:
    """`module` in eval mode (and on `device`, channels_last) for the block; its mode restored after."""
    was_training = module.training
    module.eval()
    if device is not None:
        module.to(device, memory_format=torch.channels_last)
    try:
        yield module
    finally:
        module.train(was_training)


def use_bf16(precision: str, device: torch.device, what: str = "precision") -> bool:
    """bf16 or not for `precision` (auto, fp32 or bf16): as asked; "auto" takes bf16 where `device`
    computes it natively, CUDA or a CPU with AVX512-BF16 or AMX. The one answer for every caller:
    training's autocast, the k-NN's shortlist. `what` names the setting in the error."""
    check_precision(precision, ("auto", *PRECISIONS), what)
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())


def resolve_precision(precision: str, device: str | torch.device | None = None) -> str:
    """fp32 or bf16 for `precision` (auto, fp32 or bf16) on `device` (None: "auto"), by `use_bf16`'s
    rule: what an embedding job runs in and its store records, decided once where the job starts."""
    check_precision(precision, ("auto", *PRECISIONS))
    if precision != "auto":
        return precision
    return "bf16" if use_bf16(precision, resolve_device(device if device is not None else "auto")) else "fp32"


@contextmanager
def float32_sums() -> Iterator[None]:
    """bf16 matrix products that sum in float32 inside the block: on CUDA, cuBLAS may otherwise
    reduce split-K partial sums in bf16, beyond an error bound proved for float32 sums (on the
    CPU, bf16 products always sum in float32)."""
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_bf16_reduced_precision_reduction
    matmul.allow_bf16_reduced_precision_reduction = False
    try:
        yield
    finally:
        matmul.allow_bf16_reduced_precision_reduction = before


def slow_bf16_warning(precision: str, device: torch.device, faster: str = "precision=auto") -> str:
    """One line, naming the `faster` setting, when bf16 was asked for on a CPU that can only emulate
    it; else ""."""
    if precision != "bf16" or device.type != "cpu" or cpu_has_fast_bf16():
        return ""
    return (
        "warning: this CPU has no native bf16 (AVX512-BF16 or AMX): precision=bf16 is emulated, "
        f"many times slower than fp32: {faster} is faster"
    )
