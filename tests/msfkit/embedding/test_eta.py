"""The line a long embedding job prints first: counted, timed from the warm-up, said once, only when long."""

from __future__ import annotations

import pytest

from msfkit.embedding import eta
from msfkit.embedding.eta import JobLine, duration


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(eta.time, "perf_counter", lambda: now[0])
    return now


def _run(line: JobLine, clock, batches: list[tuple[int, float]]) -> None:
    line.run_started()
    for images, seconds in batches:
        clock[0] += seconds
        line.batch(images)


def test_the_whole_job_is_timed_at_the_rate_after_the_first_batch(clock, capsys):
    line = JobLine({"train": 60_000, "val": 10_000}, "resnet18", "cpu")
    _run(line, clock, [(256, 30.0), (256, 2.0), (256, 2.0), (256, 9.0)])  # start-up, then 128 images/s
    err = capsys.readouterr()
    assert err.out == ""
    expected = "embedding 70,000 images (60,000 train + 10,000 val) with resnet18 on cpu; about 9 min\n"
    assert err.err == expected


def test_a_short_job_says_nothing_and_a_slow_small_one_does(clock, capsys):
    _run(JobLine({"": 1000}, "resnet18", "cpu"), clock, [(32, 0.5)] * 4)  # 1,000 images, 16 s
    assert capsys.readouterr().err == ""
    _run(JobLine({"": 600}, "resnet50", "cuda"), clock, [(32, 9.0)] * 4)  # 600 images, 169 s
    assert capsys.readouterr().err == "embedding 600 images with resnet50 on cuda; about 3 min\n"


def test_one_line_spans_the_runs_of_a_job_and_is_said_once(clock, capsys):
    line = JobLine({"train": 2000, "val": 500}, "resnet18", "cpu")
    _run(line, clock, [(100, 5.0), (100, 1.0)])  # train: too short a warm-up to say anything yet
    assert capsys.readouterr().err == ""
    _run(line, clock, [(100, 5.0), (100, 1.0), (100, 1.0), (100, 1.0)])  # val: its first batch untimed
    expected = "embedding 2,500 images (2,000 train + 500 val) with resnet18 on cpu; about 25 s\n"
    assert capsys.readouterr().err == expected
    assert line.done == 600


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3, "5 s"), (42, "40 s"), (61, "1 min"), (250, "4 min"), (7800, "2 h 10 min"), (7200, "2 h")],
)
def test_durations_read_like_a_person_would_say_them(seconds, text):
    assert duration(seconds) == text
