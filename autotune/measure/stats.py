"""Pure statistics over per-iteration timings. No clocks, no I/O: numbers in, numbers out."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from autotune.records.probe import IterStats


def quantile(values: Sequence[float], q: float) -> float:
    """Quantile with linear interpolation between order statistics (numpy's default 'linear' method)."""
    if not values:
        raise ValueError("quantile of an empty sequence")
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return quantile(values, 0.5)


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)


def settle_window(workers: int) -> int:
    """Iterations per comparison window in the warm-up check.

    With W loader workers, batches arrive in bursts of period about W (one long wait, then W-1 short ones), so
    the window is a multiple of W and at least 3; otherwise two windows would differ by where the bursts fall.
    """
    w = max(workers, 1)
    return w * math.ceil(3 / w)


def settle_index(
    times: Sequence[float], floor: int, ceiling: int, window: int, tol: float = 0.25
) -> tuple[int, bool] | None:
    """(leading iterations to discard as warm-up, whether they settled), or None while still undecided.

    Iterations before `floor` are always discarded. The times have settled at index i when the mean of the
    `window` iterations before i differs by at most `tol` (relative) from the mean of the `window` before those.
    Once `ceiling` iterations have been seen without settling, (ceiling, False) is returned: the caller measures
    anyway and reports that the warm-up did not settle.
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    for i in range(floor + 2 * window, min(len(times), ceiling) + 1):
        recent = mean(times[i - window : i])
        before = mean(times[i - 2 * window : i - window])
        if recent > 0 and abs(recent - before) / recent <= tol:
            return i, True
    if len(times) >= ceiling:
        return ceiling, False
    return None


def summarize(
    data_wait_s: Sequence[float],
    compute_s: Sequence[float],
    step_s: Sequence[float],
    batch: int,
    accumulate: int,
    *,
    images: Sequence[int | None] | None = None,
    produced: int | None = None,
    queue: tuple[int | None, int | None] = (None, None),
) -> IterStats:
    """Summarise a measured window.

    data_wait_s and compute_s are per iteration (same length); step_s holds the steady-state optimizer step
    durations, measured apart. The step runs every `accumulate` iterations, so each iteration is charged
    step / accumulate: a plain median over iterations with and without a step would be wrong at any window length.
    The images/s rate is images over the window's seconds (a mean, because an epoch's duration is a sum of
    iterations); images are counted per batch where known, so an epoch's short last batch counts what it holds.
    `produced` (batches the loader finished in the window: consumed, minus what its prefetch queue gave up) sets
    the loader's pace. The sustained rate is the slower of the loader's (produced / window) and the model's
    (consumed / the window's time without data waits): a window that ate batches queued before it would otherwise
    read the model's speed where the loader cannot keep it. The difference is charged as data wait.
    """
    if len(data_wait_s) != len(compute_s):
        raise ValueError("data_wait_s and compute_s must have one entry per iteration")
    if not compute_s:
        raise ValueError("no measured iterations")
    if not step_s:
        raise ValueError("no optimizer step was timed")
    if batch < 1 or accumulate < 1:
        raise ValueError("batch and accumulate must be >= 1")
    n = len(compute_s)
    if images is not None and len(images) != n:
        raise ValueError("images must have one entry per iteration")
    if produced is not None and produced < 1:
        raise ValueError(f"produced must be >= 1, got {produced}")
    step = median(step_s)
    share = step / accumulate
    per_iter = [w + c + share for w, c in zip(data_wait_s, compute_s, strict=True)]
    window_s = sum(per_iter)
    n_images = sum(batch if k is None else k for k in images) if images is not None else batch * n
    # seconds for n batches at the slower pace: the loader's (n / produced windows), or the model's own time
    sustained_s = max(window_s * n / produced, window_s - sum(data_wait_s)) if produced else window_s
    waited = sum(data_wait_s) + (sustained_s - window_s)
    return IterStats(
        n=n,
        batch=batch,
        accumulate=accumulate,
        sec_per_iter_median=median(per_iter),
        sec_per_iter_q1=quantile(per_iter, 0.25),
        sec_per_iter_q3=quantile(per_iter, 0.75),
        sec_per_iter_mean=sustained_s / n,
        images_per_s=n_images / sustained_s,
        data_wait_mean_s=waited / n,
        compute_mean_s=mean(compute_s),
        step_s=step,
        step_share_s=share,
        stall_fraction=waited / sustained_s,
        images=n_images,
        window_s=window_s,
        mean_rel_se=block_rel_se(per_iter),
        queue_start=queue[0],
        queue_end=queue[1],
        produced=produced,
    )


def block_rel_se(values: Sequence[float], blocks: int = 5) -> float | None:
    """Standard error of the mean, relative to it, from the means of `blocks` contiguous blocks (batch means).

    Iteration times are not independent (workers deliver in bursts, the GPU clocks drift), so the spread of block
    means says more about how far the window's mean may be off than the spread of single iterations. None below
    two iterations per block.
    """
    if len(values) < 2 * blocks:
        return None
    size = len(values) // blocks
    means = [mean(values[i * size : (i + 1) * size]) for i in range(blocks)]
    m = mean(means)
    return statistics.stdev(means) / math.sqrt(blocks) / m if m > 0 else None


def projected_epoch_s(n_images: int, images_per_s: float) -> float:
    """Seconds for one pass over n_images at the measured rate (the search's objective)."""
    if images_per_s <= 0:
        raise ValueError("images_per_s must be > 0")
    return n_images / images_per_s


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / mean: how far repeated measurements of the same thing disagree."""
    m = mean(values)
    return (max(values) - min(values)) / m if m else 0.0


NOISE_FLOOR = 0.10  # relative: two probes of one config on one machine differ this much (bench/probe_repeat.py)


def noise_floor(baseline_ips: Sequence[float]) -> float:
    """The uncertainty a single measurement carries: the baseline's measured drift (max - min over mean of its
    repeats) or NOISE_FLOOR, whichever is larger."""
    drift = relative_spread(baseline_ips) if len(baseline_ips) >= 2 else 0.0
    return max(drift, NOISE_FLOOR)


def ratio_interval(
    before: Sequence[float], after: Sequence[float], floor: float = NOISE_FLOOR
) -> tuple[float, float, float, bool]:
    """(factor, low, high, from_repeats): mean(after) / mean(before), with an interval.

    With at least two measurements on each side, the interval spans the extreme ratios (min after / max before ..
    max after / min before): with the two or three repeats a probe budget allows, that is the honest width. Where
    a side was measured once, it has no spread of its own to show, so the interval is at least +-floor (in log
    space: factor / (1 + floor) .. factor x (1 + floor)), and from_repeats is False.
    """
    if not before or not after or min(before) <= 0 or min(after) <= 0:
        raise ValueError("need at least one positive measurement of each")
    f = mean(after) / mean(before)
    lo, hi = min(after) / max(before), max(after) / min(before)
    repeated = len(before) >= 2 and len(after) >= 2
    if not repeated:
        lo, hi = min(lo, f / (1 + floor)), max(hi, f * (1 + floor))
    return f, lo, hi, repeated


def product_interval(factors: Sequence[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(product, low, high) of factors with intervals, propagated in log space: the log half-widths of independent
    factors add in quadrature (a product of five 10%-uncertain factors is ~22% uncertain, not 50%)."""
    if not factors or any(f <= 0 or lo <= 0 for f, lo, _ in factors):
        raise ValueError("need positive factors")
    p = math.prod(f for f, _, _ in factors)
    down = math.sqrt(sum(math.log(f / lo) ** 2 for f, lo, _ in factors))
    up = math.sqrt(sum(math.log(hi / f) ** 2 for f, _, hi in factors))
    return p, p * math.exp(-down), p * math.exp(up)


def quotient_interval(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, float, float]:
    """(a / b, low, high) for two independent values with intervals, in log space as product_interval."""
    fa, la, ha = a
    fb, lb, hb = b
    q = fa / fb
    down = math.hypot(math.log(fa / la), math.log(hb / fb))
    up = math.hypot(math.log(ha / fa), math.log(fb / lb))
    return q, q * math.exp(-down), q * math.exp(up)
