"""Factor arithmetic pinned with the story's own numbers."""

import pytest

from autotune.report.factors import (
    STORY,
    STORY_PRODUCT_CLAIM,
    Factor,
    interaction,
    iterations_per_epoch,
    measured_factor,
    naive_batch,
    naive_imgsz,
    optimizer_steps_per_epoch,
    product,
    waterfall,
)


def test_the_storys_naive_factors():
    assert naive_imgsz(640, 416) == pytest.approx(2.367, abs=5e-4)
    assert naive_batch(16, 32) == 2.0
    assert product(STORY.values()) == pytest.approx(16.35, abs=0.01)  # 2.37 x 2 x 2 x 1.5 x 1.15
    exact = [naive_imgsz(640, 416), 2.0, 2.0, 1.5, 1.15]
    assert product(exact) == pytest.approx(16.33, abs=0.01)
    assert product(exact) == pytest.approx(STORY_PRODUCT_CLAIM, abs=0.05)


def test_iterations_do_not_depend_on_image_size():
    assert iterations_per_epoch(25000, 16) == 1563  # the story says 1554 for "~25k" images
    assert iterations_per_epoch(25000, 32) == 782
    # the story's "1554 -> ~600 iterations" at 416 px is wrong: the count is images / batch at any image size;
    # ~600 iterations would need batch 42
    assert iterations_per_epoch(25000, 42) == 596


def test_optimizer_steps_barely_change_with_batch():
    # nbs=64: batch 16 steps every 4 iterations, batch 32 every 2: the same number of steps per epoch
    assert optimizer_steps_per_epoch(25000, 16) == 391
    assert optimizer_steps_per_epoch(25000, 32) == 391


def test_measured_factor_and_interval():
    f, lo, hi = measured_factor([100.0, 110.0], [150.0, 165.0])
    assert f == pytest.approx(157.5 / 105)
    assert lo == pytest.approx(150 / 110) and hi == pytest.approx(165 / 100)
    near_one = Factor("workers", 1.5, *measured_factor([100.0, 110.0], [104.0, 108.0]))
    assert near_one.indistinguishable_from_one
    assert Factor("cache", 2.0, 1.6, 1.5, 1.7).gap == pytest.approx(1.25)
    assert Factor("batch", 2.0, None, None, None, "not measurable alone").gap is None
    with pytest.raises(ValueError):
        measured_factor([], [1.0])


def test_interaction_and_waterfall():
    # imgsz 2.0 and workers 1.5 measured alone, 2.4 together: the bottleneck moved (0.8 interaction)
    assert interaction(2.4, [2.0, 1.5]) == pytest.approx(0.8)
    steps = waterfall(300.0, [("imgsz", 2.0), ("workers", 1.5)], end_to_end=2.4)
    assert [(s.label, s.start_s, s.end_s) for s in steps] == [
        ("imgsz", 300.0, 150.0),
        ("workers", 150.0, 100.0),
        ("interaction", 100.0, 125.0),
    ]
