"""The measured window against a loader whose prefetch queue is full when the window opens (timing.py).

A small event simulation stands in for torch's DataLoader: W workers, each producing one batch in `produce_s`,
at most prefetch x W batches outstanding, a new task sent whenever the trainer takes a batch. The trainer's first
iteration is slow (a GPU's start-up), so the queue is full after it. The sustained rate is known exactly:
one batch per max(compute, produce / W) seconds.
"""

from __future__ import annotations

import random

import pytest
from fakes import FakeClock

from autotune.measure.stats import settle_window, summarize
from autotune.measure.timing import IterationRecorder


class LoaderQueue:
    """torch's prefetching, as events: when each batch is ready, and how many are ready at a given time."""

    def __init__(self, workers: int, produce_s: float, prefetch: int = 4) -> None:
        self.workers, self.produce_s = workers, produce_s
        self.free_at = [0.0] * workers  # when each worker finishes what it was given
        self.ready: list[float] = []  # when batch j is ready
        self.taken = 0
        for _ in range(prefetch * workers):
            self._send(0.0)

    def _send(self, t: float) -> None:
        k = len(self.ready) % self.workers  # torch hands tasks to workers in turn
        begin = max(t, self.free_at[k])
        self.free_at[k] = begin + self.produce_s
        self.ready.append(self.free_at[k])

    def take(self, t: float) -> float:
        """The trainer asks for the next batch at t; returns when it gets it (and sends the next task then)."""
        got = max(t, self.ready[self.taken])
        self.taken += 1
        self._send(got)
        return got

    def depth(self, t: float) -> int:
        return sum(1 for r in self.ready[self.taken :] if r <= t)


def drive(rec: IterationRecorder, q: LoaderQueue, clock: FakeClock, compute_s: float, first_delay_s: float,
          limit: int = 2000) -> None:  # fmt: skip
    rec.depth = lambda: q.depth(clock.t)
    rec.mark()
    for i in range(limit):
        clock.t = q.take(clock.t)
        rec.batch_start()
        rec.count_images(16)
        clock.t += compute_s + (first_delay_s if i == 0 else 0.0)
        rec.step_start()
        rec.step_end()
        rec.batch_end()
        if rec.done:
            return
    raise AssertionError("the window never closed")


def measured_rate(rec: IterationRecorder) -> float:
    wait, compute = rec.window_times()
    c = rec.chosen
    stats = summarize(wait, compute, [0.0], 16, 1, images=rec.window_images(),
                      produced=max(c.produced, 1) if c and c.produced is not None else None)  # fmt: skip
    return stats.images_per_s


def recorder(clock: FakeClock, workers: int, *, queue_aware: bool) -> IterationRecorder:
    common = dict(iters=20, warmup_min=3, warmup_max=30, window=settle_window(workers), clock=clock)
    if not queue_aware:  # the method before: warm-up, then the next 20 iterations, whatever the queue holds
        return IterationRecorder(**common)
    return IterationRecorder(**common, min_window_s=1.0, max_iters=max(20, 2048 // 16) + 4 * workers, period=workers)


class JitteredQueue(LoaderQueue):
    """Each batch takes its worker produce_s x U(1 - jitter, 1 + jitter): images differ, workers drift apart."""

    def __init__(self, workers: int, produce_s: float, seed: int, jitter: float = 0.15) -> None:
        self.rng, self.jitter = random.Random(seed), jitter
        super().__init__(workers, produce_s)

    def _send(self, t: float) -> None:
        k = len(self.ready) % self.workers
        begin = max(t, self.free_at[k])
        self.free_at[k] = begin + self.produce_s * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        self.ready.append(self.free_at[k])


CASES = [  # workers, seconds per batch per worker, compute seconds per iteration
    (8, 0.8, 0.01),  # loader-bound: 10 batches/s against 100 the GPU could take
    (16, 3.2, 0.01),  # many workers: a queue of 64 batches, more than warm-up and a window of 20 together
    (2, 0.3, 0.1),  # loader-bound with few workers
    (8, 0.8, 0.2),  # compute-bound: the loader could make 10/s, the model takes 5/s
    (8, 8 * 0.1 / 0.9, 0.1),  # loader at 90% of the model's pace
    (1, 0.05, 0.01),  # one fast worker, slightly loader-bound
    (4, 0.1, 0.02),  # balanced
]


@pytest.mark.parametrize(("workers", "produce_s", "compute_s"), CASES)
@pytest.mark.parametrize("first_delay_s", [10.0, 0.0])
def test_a_window_reads_what_loader_and_model_sustain(workers, produce_s, compute_s, first_delay_s):
    true_rate = 16 / max(compute_s, produce_s / workers)
    clock = FakeClock()
    rec = recorder(clock, workers, queue_aware=True)
    drive(rec, LoaderQueue(workers, produce_s), clock, compute_s, first_delay_s)
    # workers in lockstep deliver in bursts: a window of ~20 produced batches is off by part of one
    assert measured_rate(rec) == pytest.approx(true_rate, rel=0.08)


@pytest.mark.parametrize(("workers", "produce_s", "compute_s"), CASES)
def test_with_workers_that_drift_apart(workers, produce_s, compute_s):
    true_rate = 16 / max(compute_s, produce_s / workers)
    for seed in range(5):
        clock = FakeClock()
        rec = recorder(clock, workers, queue_aware=True)
        drive(rec, JitteredQueue(workers, produce_s, seed), clock, compute_s, first_delay_s=10.0)
        assert measured_rate(rec) == pytest.approx(true_rate, rel=0.12)  # 20 batches' own sampling noise


def test_the_method_before_reads_the_full_queue_as_speed():
    """Today's window (20 iterations after warm-up) consumes the queue the slow first iteration let fill up: with 16
    workers it never waits for the loader at all and reads the GPU's speed, 10x the loader's."""
    true_rate = 16 / max(0.01, 3.2 / 16)
    clock = FakeClock()
    old = recorder(clock, 16, queue_aware=False)
    drive(old, LoaderQueue(16, 3.2), clock, 0.01, first_delay_s=10.0)
    wait, compute = old.window_times()
    assert 16 * len(wait) / (sum(wait) + sum(compute)) > 3 * true_rate
    clock = FakeClock()
    new = recorder(clock, 16, queue_aware=True)
    drive(new, LoaderQueue(16, 3.2), clock, 0.01, first_delay_s=10.0)
    assert measured_rate(new) == pytest.approx(true_rate, rel=0.08)
    c = new.chosen
    assert c is not None and c.queue_start is not None and c.queue_start <= 4  # it opened once the queue drained


def test_a_queue_still_draining_at_the_cap_is_corrected():
    """A queue that gives up one batch every other iteration, for longer than the cap: the window is kept at the
    cap, and its rate is the loader's (half the batches consumed were produced in it), not the model's."""
    clock = FakeClock()
    rec = IterationRecorder(iters=20, warmup_min=3, warmup_max=30, window=3, clock=clock, max_iters=60,
                            depth=lambda: 1000 - len(rec.compute_s) // 2)  # fmt: skip
    rec.mark()
    while not rec.done:
        rec.batch_start()
        clock.t += 0.1
        rec.step_start()
        rec.step_end()
        rec.batch_end()
        assert rec.n_seen < 200
    c = rec.chosen
    assert c is not None and rec.n_seen - (rec.warmup or 0) == 60
    assert c.end - c.start == 60 and c.produced == 30
    assert measured_rate(rec) == pytest.approx(16 / 0.2)  # uncorrected it reads 16 / 0.1


def test_a_fast_window_lasts_min_window_s():
    clock = FakeClock()
    rec = recorder(clock, 2, queue_aware=True)
    drive(rec, LoaderQueue(2, 0.001), clock, 0.02, first_delay_s=0.0)
    wait, compute = rec.window_times()
    assert sum(wait) + sum(compute) >= 1.0 and len(compute) >= 50  # not 20 iterations of 0.02 s


def test_an_unreadable_queue_measures_as_before():
    """Where the depth cannot be read (macOS queues have no size), the window is warm-up plus `iters`, uncorrected."""
    clock = FakeClock()
    rec = IterationRecorder(iters=5, warmup_min=2, warmup_max=10, window=1, clock=clock, depth=lambda: None)
    rec.mark()
    while not rec.done:
        rec.batch_start()
        clock.t += 0.1
        rec.batch_end()
    assert rec.chosen is not None and rec.chosen.produced is None
    assert rec.chosen.end - rec.chosen.start == 5


def test_short_batches_count_the_images_they_hold():
    stats = summarize([0.0] * 4, [1.0] * 4, [0.0], 16, 1, images=[16, 16, 16, 4])
    assert stats.images == 52 and stats.images_per_s == pytest.approx(13.0)
    assert summarize([0.0] * 4, [1.0] * 4, [0.0], 16, 1).images_per_s == pytest.approx(16.0)


def test_the_slower_of_loader_and_model_sets_the_rate():
    # 10 batches consumed in 10 s (5 s of it waiting), but the loader made only 5: it sustains one per 2 s
    stats = summarize([0.5] * 10, [0.5] * 10, [0.0], 8, 1, produced=5)
    assert stats.images_per_s == pytest.approx(4.0)
    assert stats.sec_per_iter_mean == pytest.approx(2.0)
    assert stats.stall_fraction == pytest.approx((5 + 10) / 20)
    assert stats.window_s == pytest.approx(10.0)
    # the loader made more than was taken (its queue grew): the model's own 5 s for 10 batches is the limit
    grew = summarize([0.5] * 10, [0.5] * 10, [0.0], 8, 1, produced=20)
    assert grew.images_per_s == pytest.approx(16.0) and grew.stall_fraction == pytest.approx(0.0)
