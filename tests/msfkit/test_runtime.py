"""msfkit.runtime: sizes in bytes, and the single-process Ranks (torchrun ranks: test_run_processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from msfkit.eval.knn import knn_scores
from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import (
    check_precision,
    cpu_flags_line,
    cpu_has_fast_bf16,
    evaluating,
    resolve_device,
    slow_bf16_warning,
    use_bf16,
)
from msfkit.runtime import Ranks
from msfkit.sizes import format_bytes, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512MB", 512 * 2**20), ("4GB", 4 * 2**30), ("1.5GiB", int(1.5 * 2**30)), ("2g", 2 * 2**30),
     ("1000", 1000), (" 64 kb ", 64 * 1024), (7, 7)],
)  # fmt: skip
def test_sizes_parse_in_powers_of_1024(text, expected):
    assert parse_size(text) == expected


def test_a_bad_size_names_the_option():
    with pytest.raises(MsfkitError, match="--memory-budget 'lots': expected a size"):
        parse_size("lots", "--memory-budget")
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(3 * 2**30) == "3.0 GiB"


def test_one_process_ranks_are_rank_0_of_1_and_run_everything_locally(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ranks = Ranks.from_env()
    assert (ranks.rank, ranks.world, ranks.is_main) == (0, 1, True)
    assert ranks.from_rank0(lambda: 41 + 1) == 42 and ranks.sum((1, 2)) == (1, 2)
    assert ranks.device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_devices_and_precisions_have_one_message_each():
    with pytest.raises(MsfkitError, match="device must be auto, cpu or cuda, not 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(MsfkitError, match="no CUDA device is visible"):
            resolve_device("cuda")
    with pytest.raises(MsfkitError, match="k-NN precision must be one of auto, fp32, bf16"):
        check_precision("fp16", ("auto", "fp32", "bf16"), "k-NN precision")


def test_evaluating_restores_the_mode_even_after_an_error():
    net = torch.nn.BatchNorm1d(3).train()
    with pytest.raises(RuntimeError), evaluating(net):
        assert not net.training
        raise RuntimeError("boom")
    assert net.training


AVX2 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_bf16_counts_as_native_only_with_the_cpus_avx512_bf16_or_amx_flag():
    assert not cpu_has_fast_bf16(AVX2)
    assert cpu_has_fast_bf16(SAPPHIRE)
    assert cpu_has_fast_bf16("flags\t\t: avx512f avx512_bf16\n")
    assert not cpu_has_fast_bf16("model name\t: avx512_bf16 marketing name\nflags\t\t: avx2\n")


def test_a_process_that_holds_onednn_below_bf16_computes_it_emulated(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 makes a bf16 CPU behave as one without: auto takes fp32, and the
    benchmark's first line says what the process was held to."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu_has_fast_bf16() and not use_bf16("auto", torch.device("cpu"))
    assert cpu_has_fast_bf16(SAPPHIRE)  # a described CPU is judged by its flags alone
    line = cpu_flags_line()
    assert "(bf16 emulated); held to ONEDNN_MAX_CPU_ISA=AVX2 (torch's vector ISA " in line
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # not below bf16: the flags decide
    assert cpu_has_fast_bf16() == cpu_has_fast_bf16(Path("/proc/cpuinfo").read_text())


def test_auto_precision_takes_bf16_where_it_is_native_and_says_when_asked_bf16_is_emulated():
    cpu, native = torch.device("cpu"), cpu_has_fast_bf16()
    assert use_bf16("auto", cpu) is native
    assert use_bf16("bf16", cpu) and not use_bf16("fp32", cpu)
    assert use_bf16("auto", torch.device("cuda"))  # a device, not a GPU: nothing runs on it
    assert ("no native bf16" in slow_bf16_warning("bf16", cpu)) is not native
    assert slow_bf16_warning("auto", cpu) == slow_bf16_warning("fp32", cpu) == ""


@pytest.mark.parametrize("device", ["cpu", "cuda"])  # devices, not GPUs: nothing runs on them
def test_training_and_the_knn_take_one_answer_for_auto(device):
    expected, where = device == "cuda" or cpu_has_fast_bf16(), torch.device(device)
    assert use_bf16("auto", where) is use_bf16("auto", where, "k-NN precision") is expected
    with pytest.raises(MsfkitError, match="k-NN precision must be one of auto, fp32, bf16"):
        knn_scores(torch.eye(2), [0, 1], torch.eye(2), ks=(1,), precision="fp16")


def test_no_other_module_decides_bf16_from_the_cpus_flags():
    """The k-NN once said float32 on CUDA where training said bf16: one rule, models/runtime.py."""
    root = Path(__file__).resolve().parents[2]  # the repository
    sources = [p for folder in ("msfkit", "models", "training", "cli") for p in (root / folder).rglob("*.py")]
    deciders = [p.relative_to(root).as_posix() for p in sources if "cpu_has_fast_bf16()" in p.read_text()]
    assert deciders == ["models/runtime.py"]
