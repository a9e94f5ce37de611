"""The per-iteration stopwatch a probe drives from Ultralytics' callbacks.

It splits each training iteration into data wait (blocked on the loader), compute (forward and backward) and
optimizer step (timed apart, since it runs only every `accumulate` iterations), decides when the warm-up is
over and when the measured window is full. Clock and device sync are injected, so tests drive it by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autotune.measure.stats import settle_index

WARMUP, MEASURE, DONE = "warmup", "measure", "done"


@dataclass
class IterationRecorder:
    iters: int  # iterations to measure after warm-up
    warmup_min: int
    warmup_max: int
    window: int  # settle-check window (stats.settle_window)
    tol: float = 0.25
    step_discard: int = 1  # the first optimizer step allocates state (Adam moments, momentum): not steady
    clock: Callable[[], float] = time.perf_counter
    sync: Callable[[], None] = lambda: None  # torch.cuda.synchronize on GPU: kernels are asynchronous

    data_wait_s: list[float] = field(default_factory=list)  # every iteration, warm-up included
    compute_s: list[float] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)  # every optimizer step, in order
    step_iters: list[int] = field(default_factory=list)  # iteration index of each step
    warmup: int | None = None  # iterations discarded, once decided
    settled: bool = False
    _last_end: float | None = None
    _start: float = 0.0
    _step_start: float = 0.0
    _step_in_iter: float = 0.0

    def mark(self) -> None:
        """Start the clock for the first data wait (the loader starts producing now)."""
        self.sync()
        self._last_end = self.clock()

    def batch_start(self) -> None:
        self.sync()
        t = self.clock()
        self.data_wait_s.append(t - self._last_end if self._last_end is not None else 0.0)
        self._start = t
        self._step_in_iter = 0.0

    def step_start(self) -> None:
        self.sync()
        self._step_start = self.clock()

    def step_end(self) -> None:
        self.sync()
        d = self.clock() - self._step_start
        self.step_s.append(d)
        self.step_iters.append(len(self.compute_s))
        self._step_in_iter += d

    def batch_end(self) -> None:
        self.sync()
        t = self.clock()
        self.compute_s.append(t - self._start - self._step_in_iter)
        self._last_end = t
        if self.warmup is None:
            totals = [w + c for w, c in zip(self.data_wait_s, self.compute_s, strict=True)]
            decided = settle_index(totals, self.warmup_min, self.warmup_max, self.window, self.tol)
            if decided is not None:
                self.warmup, self.settled = decided

    def last_total(self) -> float:
        """Wall time of the last iteration, its optimizer step included."""
        return self.data_wait_s[-1] + self.compute_s[-1] + self._step_in_iter

    @property
    def phase(self) -> str:
        if self.warmup is None:
            return WARMUP
        return DONE if len(self.compute_s) >= self.warmup + self.iters else MEASURE

    @property
    def done(self) -> bool:
        return self.phase == DONE

    @property
    def n_seen(self) -> int:
        return len(self.compute_s)

    def window_times(self) -> tuple[list[float], list[float]]:
        """Data wait and compute of the measured window (warm-up dropped)."""
        w0 = self.warmup or 0
        end = w0 + self.iters
        return self.data_wait_s[w0:end], self.compute_s[w0:end]

    def steady_steps(self) -> list[float]:
        """Optimizer step durations after the first `step_discard` steps."""
        return self.step_s[self.step_discard :]
