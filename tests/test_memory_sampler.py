"""The peak-memory sampler bounds its own cost: it must not slow the training it measures."""

from __future__ import annotations

import itertools
import time

import pytest

from autotune.measure.machine import PeakMemorySampler, sampler_wait


def test_the_wait_keeps_sampling_to_its_share_of_the_time() -> None:
    # 100 ms samples (4 processes' smaps_rollup on a 2-core VM) at a 2% share: one every 5 s
    assert sampler_wait(0.100, 0.25, 0.02) == pytest.approx(4.9)
    assert 0.100 / (0.100 + sampler_wait(0.100, 0.25, 0.02)) == pytest.approx(0.02)
    # a cheap sample waits the floor, never less
    assert sampler_wait(0.001, 0.25, 0.02) == 0.25


def test_a_slow_read_is_sampled_rarely_and_its_cost_is_counted() -> None:
    calls: list[float] = []

    def slow_read(pid: int) -> tuple[int, int, str]:
        calls.append(time.monotonic())
        time.sleep(0.05)
        return 1000 * len(calls), 2, "pss"

    # a 50 ms read at a 10% share waits ~0.45 s: in 1.2 s that is about 3 samples, not the 5 a fixed 0.25 s takes
    with PeakMemorySampler(pid=1, interval_s=0.25, share=0.10, read=slow_read) as s:
        time.sleep(1.2)
    assert 2 <= len(calls) <= 4  # samples in the thread, plus the one at exit
    gaps = [b - a for a, b in itertools.pairwise(calls[:-1])]  # the last sample is the one taken at exit
    assert all(g >= 0.45 for g in gaps)
    assert s.samples == len(calls)
    assert s.sampling_s >= 0.05 * len(calls)
    assert s.peak_bytes == 1000 * len(calls)
    assert s.max_children == 2


def test_a_sample_taken_by_hand_counts_towards_the_peak() -> None:
    values = iter([5, 50, 7])

    def read(pid: int) -> tuple[int, int, str]:
        return next(values, 7), 0, "rss"

    s = PeakMemorySampler(pid=1, interval_s=60, read=read)
    with s:
        s.sample()
        s.sample()
    assert s.peak_bytes == 50
    assert s.kind == "rss"
