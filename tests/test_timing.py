"""The per-iteration stopwatch, driven by a fake clock."""

import pytest
from fakes import FakeClock

from autotune.measure.timing import DONE, MEASURE, WARMUP, IterationRecorder


def run_iteration(rec: IterationRecorder, clock: FakeClock, wait: float, compute: float, step: float | None) -> None:
    clock.t += wait
    rec.batch_start()
    clock.t += compute
    if step is not None:
        rec.step_start()
        clock.t += step
        rec.step_end()
    rec.batch_end()


def test_splits_wait_compute_and_step():
    clock = FakeClock()
    rec = IterationRecorder(iters=2, warmup_min=0, warmup_max=0, window=1, clock=clock, sync=clock.sync)
    rec.mark()
    run_iteration(rec, clock, wait=0.25, compute=1.0, step=0.5)
    run_iteration(rec, clock, wait=0.125, compute=2.0, step=None)
    assert rec.data_wait_s == [0.25, 0.125]
    assert rec.compute_s == [1.0, 2.0]  # the step is timed apart, not inside compute
    assert rec.step_s == [0.5]
    assert rec.step_iters == [0]
    assert clock.syncs == 1 + 2 * 2 + 2  # mark, start+end per iteration, step start+end


def test_warmup_then_window_then_done():
    clock = FakeClock()
    rec = IterationRecorder(iters=3, warmup_min=2, warmup_max=20, window=2, tol=0.1, clock=clock)
    rec.mark()
    computes = [9.0, 4.0, 2.0, 1.0, 1.0, 1.0, 1.0]  # settles once two windows of 1.0 follow the slow start
    for c in computes:
        assert rec.phase == WARMUP
        run_iteration(rec, clock, wait=0.0, compute=c, step=0.1)
    assert rec.warmup == 7 and rec.settled
    assert rec.phase == MEASURE
    for c in (1.5, 1.25, 1.0):
        run_iteration(rec, clock, wait=0.5, compute=c, step=None)
    assert rec.phase == DONE and rec.done
    wait, compute = rec.window_times()
    assert wait == [0.5, 0.5, 0.5]
    assert compute == [1.5, 1.25, 1.0]
    assert rec.steady_steps() == pytest.approx([0.1] * 6)  # first step dropped


def test_unsettled_warmup_is_reported():
    clock = FakeClock()
    rec = IterationRecorder(iters=1, warmup_min=0, warmup_max=4, window=1, tol=0.01, clock=clock)
    rec.mark()
    for c in (1.0, 2.0, 4.0, 8.0):
        run_iteration(rec, clock, 0.0, c, None)
    assert rec.warmup == 4 and not rec.settled
    run_iteration(rec, clock, 0.0, 16.0, None)
    assert rec.done
