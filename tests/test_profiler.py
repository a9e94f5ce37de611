"""The bottleneck verdict and the cache arithmetic, with hand-picked numbers."""

import pytest

from autotune.measure.cachebench import CacheBench, CacheBuild, ModeRead, break_even_epochs
from autotune.measure.loader import LoaderResult, worker_counts
from autotune.measure.profile import cache_advice, classify, page_cache_note, saturation


def test_data_bound_when_the_model_waits_and_the_loader_is_slower():
    d = classify(stall_fraction=0.40, end_to_end_ips=60, loader_ips=65, compute_ips=200)
    assert d.verdict == "data-bound"
    assert d.loader_headroom == pytest.approx(65 / 60)
    assert d.compute_headroom == pytest.approx(200 / 60)
    assert "40%" in d.reason


def test_compute_bound_when_the_model_barely_waits():
    d = classify(stall_fraction=0.02, end_to_end_ips=100, loader_ips=400, compute_ips=110)
    assert d.verdict == "compute-bound"
    assert "4.0x" in d.reason


def test_the_five_percent_threshold_is_exclusive():
    assert classify(0.05, 100, 400, 110).verdict == "compute-bound"
    assert classify(0.0501, 100, 90, 200).verdict == "data-bound"


def test_balanced_when_both_sides_are_fast_alone_but_slow_together():
    # 2 CPU cores: loader alone 180/s, model alone 24/s, together 18/s with 20% stall
    d = classify(stall_fraction=0.20, end_to_end_ips=18, loader_ips=180, compute_ips=24)
    assert d.verdict == "balanced"
    assert "compete" in d.reason


def test_balanced_when_the_loader_only_just_keeps_up():
    d = classify(stall_fraction=0.01, end_to_end_ips=100, loader_ips=105, compute_ips=300)
    assert d.verdict == "balanced"


def test_data_bound_without_a_compute_ceiling():
    assert classify(0.3, 50, None, None).verdict == "data-bound"


def test_break_even_epochs():
    assert break_even_epochs(build_s=600.0, saved_s_per_epoch=300.0) == 2.0
    assert break_even_epochs(600.0, 0.0) is None
    assert break_even_epochs(600.0, -5.0) is None


def _bench() -> CacheBench:
    reads = (
        ModeRead("none", "cold", 0.020, 50.0),
        ModeRead("none", "warm", 0.010, 100.0),
        ModeRead("disk", "cold", 0.004, 250.0),
        ModeRead("disk", "warm", 0.001, 1000.0),
        ModeRead("ram", "memory", 0.0001, 10000.0),
    )
    builds = (
        CacheBuild("disk", 10, 1.0, 10 * 2_764_800, 1000, 100.0, 2_764_800_000, 10**11, True),
        CacheBuild("ram", 10, 0.5, 10 * 49_152, 1000, 50.0, 49_152_000, 10**10, True),
    )
    return CacheBench(128, 10, reads, builds, 300_000_000, 10**10, 10**11)


def test_cache_advice_uses_the_full_runs_regime():
    warm = {a.mode: a for a in cache_advice(_bench(), n_train=800, regime="warm")}
    # warm: none 10 ms vs disk 1 ms -> 9 ms x 800 = 7.2 s per epoch; 100 s build -> 13.9 epochs
    assert warm["disk"].saved_s_per_epoch == pytest.approx(7.2)
    assert warm["disk"].break_even_epochs == pytest.approx(100 / 7.2)
    # ram: 10 ms - 0.1 ms = 9.9 ms x 800 = 7.92 s; 50 s build
    assert warm["ram"].break_even_epochs == pytest.approx(50 / 7.92)
    cold = {a.mode: a for a in cache_advice(_bench(), n_train=800, regime="cold")}
    # cold: none 20 ms vs disk 4 ms -> 16 ms x 800 = 12.8 s
    assert cold["disk"].break_even_epochs == pytest.approx(100 / 12.8)


def test_page_cache_note_says_how_much_the_page_cache_hides():
    note = page_cache_note(_bench(), regime="cold")
    assert "hides 50%" in note and "trust the cold figure" in note


def test_saturation_and_worker_counts():
    scaling = (
        LoaderResult(0, "ok", images_per_s=114.0),
        LoaderResult(1, "ok", images_per_s=102.0),
        LoaderResult(2, "ok", images_per_s=181.0),
        LoaderResult(4, "ok", images_per_s=190.0),
        LoaderResult(8, "timeout", "hung"),
    )
    assert saturation(scaling) == 2  # 181 is within 10% of the best, 190
    assert saturation(()) is None
    assert worker_counts(1) == [0, 1]
    assert worker_counts(2) == [0, 1, 2]
    assert worker_counts(12) == [0, 1, 2, 4, 8, 12]
