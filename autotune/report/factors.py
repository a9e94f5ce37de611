"""Speedup-factor arithmetic: the story's naive rules, measured one-lever-at-a-time factors, their interaction.

Pure functions over plain numbers, so the report's core can be pinned with hand-picked values. A speedup
factor is always new throughput / old throughput (images/s), equivalently old epoch time / new epoch time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from autotune.measure.stats import NOISE_FLOOR, ratio_interval

# The story's claims, as it states them (DESIGN.md "Factors"): 640 -> 416 px, batch 16 -> 32, disk -> RAM
# cache, workers 8 -> 12-16, SGD -> Adam; multiplied into a "theoretical 16.3x" against a "reality 5-8x".
STORY = {
    "imgsz": 2.37,
    "batch": 2.0,
    "cache": 2.0,
    "workers": 1.5,
    "optimizer": 1.15,
}
STORY_PRODUCT_CLAIM = 16.3
STORY_REALITY = (5.0, 8.0)


def naive_imgsz(old: int, new: int) -> float:
    """The story's rule: time scales with pixels, (old/new)^2; (640/416)^2 = 2.367."""
    return (old / new) ** 2


def naive_batch(old: int, new: int) -> float:
    """The story's rule: a batch twice as large is twice as fast (new/old)."""
    return new / old


def product(factors: Sequence[float]) -> float:
    return math.prod(factors)


def iterations_per_epoch(images: int, batch: int) -> int:
    """Images / batch, rounded up. The image size never changes this count, only the time per iteration."""
    return math.ceil(images / batch)


def optimizer_steps_per_epoch(images: int, batch: int, nbs: int = 64) -> int:
    """With Ultralytics' nominal batch size the optimizer steps every max(round(nbs / batch), 1) iterations."""
    return math.ceil(iterations_per_epoch(images, batch) / max(round(nbs / batch), 1))


@dataclass(frozen=True)
class Factor:
    lever: str
    naive: float | None  # the story's rule for this change; None where it has none
    measured: float | None  # lever-only throughput / baseline throughput; None when not measurable alone
    low: float | None  # interval from repeated probes
    high: float | None
    note: str = ""

    @property
    def indistinguishable_from_one(self) -> bool:
        return self.low is not None and self.high is not None and self.low <= 1.0 <= self.high

    @property
    def gap(self) -> float | None:
        """Naive over measured: how much the rule promised beyond what this machine delivered."""
        if self.naive is None or not self.measured:
            return None
        return self.naive / self.measured


def measured_factor(
    baseline_ips: Sequence[float], lever_ips: Sequence[float], floor: float = NOISE_FLOOR
) -> tuple[float, float, float]:
    """(factor, low, high) from repeated images/s of the baseline and of the baseline with one lever changed.

    The factor is the ratio of means; with repeats on both sides the interval spans the extreme ratios of the
    repeats (min lever / max baseline .. max lever / min baseline), and a factor whose interval holds 1 is
    indistinguishable from no change. A side measured once has no spread to show: the interval is then at least
    the noise floor (stats.ratio_interval), never zero-width.
    """
    f, lo, hi, _ = ratio_interval(baseline_ips, lever_ips, floor)
    return f, lo, hi


def interaction(end_to_end: float, single_factors: Sequence[float]) -> float:
    """End-to-end speedup over the product of the single-lever factors.

    1 means the levers multiply; below 1, they acted on the same bottleneck and once it moved, further gains
    on the old one were worth nothing; above 1, they helped each other.
    """
    p = product(single_factors)
    if p <= 0:
        raise ValueError("factors must be positive")
    return end_to_end / p


@dataclass(frozen=True)
class WaterfallStep:
    label: str
    start_s: float  # epoch time before this step
    end_s: float  # epoch time after it


def waterfall(baseline_epoch_s: float, factors: Sequence[tuple[str, float]], end_to_end: float) -> list[WaterfallStep]:
    """Epoch time from the baseline through each measured factor, then the interaction, to the winner's.

    The last step ends exactly at baseline / end_to_end, whatever the factors multiply to.
    """
    steps, t = [], baseline_epoch_s
    for label, f in factors:
        steps.append(WaterfallStep(label, t, t / f))
        t /= f
    final = baseline_epoch_s / end_to_end
    steps.append(WaterfallStep("interaction", t, final))
    return steps
