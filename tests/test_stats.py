"""Pure statistics, pinned with hand-picked numbers."""

import pytest

from autotune.measure.stats import (
    mean,
    median,
    projected_epoch_s,
    quantile,
    relative_spread,
    settle_index,
    settle_window,
    summarize,
)


def test_quantile_linear_interpolation():
    xs = [4.0, 1.0, 3.0, 2.0]  # sorted: 1 2 3 4
    assert quantile(xs, 0.0) == 1.0
    assert quantile(xs, 1.0) == 4.0
    assert quantile(xs, 0.5) == 2.5
    assert quantile(xs, 0.25) == pytest.approx(1.75)  # position 0.75 between 1 and 2
    assert median([5.0, 1.0, 3.0]) == 3.0
    assert mean([1.0, 2.0, 6.0]) == 3.0


def test_quantile_rejects_empty_and_bad_q():
    with pytest.raises(ValueError):
        quantile([], 0.5)
    with pytest.raises(ValueError):
        quantile([1.0], 1.5)


def test_summarize_spreads_the_optimizer_step_over_its_period():
    # 4 iterations, batch 8, accumulate 8: one step of 0.8 s costs 0.1 s per iteration.
    s = summarize(
        data_wait_s=[0.1, 0.0, 0.2, 0.1],
        compute_s=[0.5, 0.6, 0.4, 0.5],
        step_s=[0.8, 0.8, 0.9],
        batch=8,
        accumulate=8,
    )
    # per iteration: 0.6+0.1, 0.6+0.1, 0.6+0.1, 0.6+0.1 = 0.7 each
    assert s.step_s == 0.8
    assert s.step_share_s == pytest.approx(0.1)
    assert s.sec_per_iter_median == pytest.approx(0.7)
    assert s.sec_per_iter_mean == pytest.approx(0.7)
    assert s.images_per_s == pytest.approx(8 / 0.7)
    assert s.stall_fraction == pytest.approx(0.4 / 2.8)
    assert s.data_wait_mean_s == pytest.approx(0.1)
    assert s.compute_mean_s == pytest.approx(0.5)
    assert s.iqr_rel == pytest.approx(0.0)


def test_summarize_rate_uses_the_mean_not_the_median():
    # bursty loader: every other batch waits 1 s. Median says 0.5 s/iter, but an epoch runs at the mean.
    s = summarize([0.0, 1.0, 0.0, 1.0, 0.0], [0.5] * 5, [0.0], batch=10, accumulate=1)
    assert s.sec_per_iter_median == pytest.approx(0.5)
    assert s.sec_per_iter_mean == pytest.approx(0.9)
    assert s.images_per_s == pytest.approx(10 / 0.9)
    assert s.sec_per_iter_q1 == pytest.approx(0.5)
    assert s.sec_per_iter_q3 == pytest.approx(1.5)


def test_summarize_refuses_bad_input():
    with pytest.raises(ValueError):
        summarize([0.1], [0.1, 0.2], [0.1], 8, 8)
    with pytest.raises(ValueError):
        summarize([], [], [0.1], 8, 8)
    with pytest.raises(ValueError):
        summarize([0.1], [0.1], [], 8, 8)


def test_settle_window_is_a_multiple_of_workers():
    assert settle_window(0) == 3
    assert settle_window(1) == 3
    assert settle_window(2) == 4
    assert settle_window(3) == 3
    assert settle_window(8) == 8


def test_settle_index_skips_slow_start():
    times = [5.0, 3.0, 2.0, 1.0, 1.1, 1.0, 0.9, 1.0, 1.05]
    # floor 2, window 2: first check at i=6 compares mean(t[4:6])=1.05 with mean(t[2:4])=1.5: 43% apart;
    # i=7: mean(t[5:7])=0.95 vs mean(t[3:5])=1.05: 10.5% -> settled at 7
    assert settle_index(times, floor=2, ceiling=20, window=2, tol=0.25) == (7, True)


def test_settle_index_waits_then_gives_up_at_ceiling():
    rising = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert settle_index(rising[:4], floor=0, ceiling=6, window=1, tol=0.25) is None
    assert settle_index(rising, floor=0, ceiling=6, window=1, tol=0.25) == (6, False)


def test_projected_epoch_and_spread():
    assert projected_epoch_s(25000, 100.0) == 250.0
    with pytest.raises(ValueError):
        projected_epoch_s(10, 0.0)
    assert relative_spread([90.0, 110.0]) == pytest.approx(0.2)
