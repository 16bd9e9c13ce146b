"""msfkit.runtime: sizes in bytes, and the single-process Ranks (torchrun ranks: test_run_processes)."""

from __future__ import annotations

import pytest
import torch

from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import check_precision, evaluating, resolve_device
from msfkit.runtime import Ranks, format_bytes, parse_size


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
