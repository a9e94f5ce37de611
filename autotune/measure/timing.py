"""The per-iteration stopwatch a probe drives from Ultralytics' callbacks.

It splits each training iteration into data wait (blocked on the loader), compute (forward and backward) and
optimizer step (timed apart, since it runs only every `accumulate` iterations), decides when the warm-up is
over and which iterations form the measured window. Clock, device sync and the loader's queue depth are
injected, so tests drive it by hand.

The window is chosen so that the loader's prefetch queue cannot hide a slow loader. Ultralytics' workers keep up
to prefetch_factor x workers batches ready; they fill that queue while the trainer sets up and while the first
(slow, on a GPU) iterations run. A window that consumes those ready batches measures the model, not the loader
(tests/test_queue_window.py: with 16 workers it read 10x the loader's rate). So the queue's depth (batches ready)
is read after every iteration, and a window closes when
- it holds at least `iters` iterations and lasts `min_window_s`,
- the loader produced at least `iters` batches in it (consumed, minus what the queue gave up), and
- the queue gave up no more than `queue_slack` of its batches: the drain of what was queued before is over.
Its length is a multiple of the workers: workers restarted together after a full queue deliver in bursts of about
W batches. stats.summarize then takes the slower of the loader's pace (produced / seconds) and the model's, which
also corrects the slack's few batches. A window that reaches the cap without settling is kept, corrected the same
way. Where the depth cannot be read, the window is warm-up plus `iters`, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autotune.measure.stats import settle_index

WARMUP, MEASURE, DONE = "warmup", "measure", "done"


@dataclass(frozen=True)
class WindowChoice:
    """The measured iterations [start, end) and the loader queue around them."""

    start: int
    end: int
    queue_start: int | None  # batches ready when the window opened; None where it cannot be read
    queue_end: int | None

    @property
    def produced(self) -> int | None:
        """Batches the loader finished during the window: consumed, minus what the queue gave up (None: unknown)."""
        if self.queue_start is None or self.queue_end is None:
            return None
        return self.end - self.start - self.queue_start + self.queue_end


@dataclass
class IterationRecorder:
    iters: int  # iterations the window holds at least
    warmup_min: int
    warmup_max: int
    window: int  # settle-check window (stats.settle_window)
    tol: float = 0.25
    step_discard: int = 1  # the first optimizer step allocates state (Adam moments, momentum): not steady
    clock: Callable[[], float] = time.perf_counter
    sync: Callable[[], None] = lambda: None  # torch.cuda.synchronize on GPU: kernels are asynchronous
    min_window_s: float = 0.0  # the window also lasts at least this long (a fast GPU's 20 iterations are ~1 s)
    max_iters: int | None = None  # window iterations at most, steady or not; None: `iters`
    depth: Callable[[], int | None] = lambda: None  # loader batches ready now; None where unknown (no correction)
    queue_slack: float = 0.1  # a steady window gives up at most this share of its batches from the queue (>= 1)
    period: int = 1  # window lengths are multiples of this: W workers deliver in bursts of about W batches

    data_wait_s: list[float] = field(default_factory=list)  # every iteration, warm-up included
    compute_s: list[float] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)  # every optimizer step, in order
    step_iters: list[int] = field(default_factory=list)  # iteration index of each step
    images: list[int | None] = field(default_factory=list)  # images in each iteration's batch, where counted
    depths: list[int | None] = field(default_factory=list)  # batches ready after each iteration
    depth_at_mark: int | None = None
    warmup: int | None = None  # iterations discarded, once decided
    settled: bool = False
    chosen: WindowChoice | None = None
    _cum_s: list[float] = field(default_factory=lambda: [0.0])  # wall time of iterations [0, i), steps included
    _last_end: float | None = None
    _start: float = 0.0
    _step_start: float = 0.0
    _step_in_iter: float = 0.0

    def mark(self) -> None:
        """Start the clock for the first data wait (the loader starts producing now)."""
        self.sync()
        self._last_end = self.clock()
        self.depth_at_mark = self.depth()

    def batch_start(self) -> None:
        self.sync()
        t = self.clock()
        self.data_wait_s.append(t - self._last_end if self._last_end is not None else 0.0)
        self.images.append(None)
        self._start = t
        self._step_in_iter = 0.0

    def count_images(self, n: int) -> None:
        """The current iteration's batch holds n images (an epoch's last batch is short)."""
        self.images[-1] = n

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
        self._cum_s.append(self._cum_s[-1] + self.last_total())
        self.depths.append(self.depth())
        if self.warmup is None:
            totals = [w + c for w, c in zip(self.data_wait_s, self.compute_s, strict=True)]
            decided = settle_index(totals, self.warmup_min, self.warmup_max, self.window, self.tol)
            if decided is not None:
                self.warmup, self.settled = decided
        if self.warmup is not None and self.chosen is None:
            self.chosen = self._choose()

    def _depth_before(self, i: int) -> int | None:
        return self.depth_at_mark if i == 0 else self.depths[i - 1]

    def _choice(self, s: int, e: int) -> WindowChoice:
        return WindowChoice(s, e, self._depth_before(s), self.depths[e - 1])

    def _steady(self, c: WindowChoice) -> bool:
        """The queue gave up no more than the slack: the window is past the drain of what was queued before it."""
        assert c.queue_start is not None and c.queue_end is not None
        return c.queue_start - c.queue_end <= max(1.0, self.queue_slack * (c.end - c.start))

    def _choose(self) -> WindowChoice | None:
        """The longest window ending now that lasts min_window_s and in which the loader produced `iters` batches;
        at the cap, the longest window, whatever it holds."""
        e, w0 = len(self.compute_s), self.warmup or 0
        starts = [s for s in range(w0, e - self.iters + 1) if (e - s) % self.period == 0]
        for s in starts:
            if self._cum_s[e] - self._cum_s[s] < self.min_window_s:
                break  # later starts are shorter still
            c = self._choice(s, e)
            if c.produced is None or (c.produced >= self.iters and self._steady(c)):
                return c
        if e - w0 >= (self.max_iters or self.iters) and starts:
            return self._choice(starts[0], e)
        return None

    def last_total(self) -> float:
        """Wall time of the last iteration, its optimizer step included."""
        return self.data_wait_s[-1] + self.compute_s[-1] + self._step_in_iter

    @property
    def phase(self) -> str:
        if self.warmup is None:
            return WARMUP
        return MEASURE if self.chosen is None else DONE

    @property
    def done(self) -> bool:
        return self.phase == DONE

    @property
    def n_seen(self) -> int:
        return len(self.compute_s)

    def window_range(self) -> tuple[int, int]:
        """[start, end) of the window: the chosen one, or from the warm-up's end to now while still measuring."""
        if self.chosen is not None:
            return self.chosen.start, self.chosen.end
        w0 = self.warmup or 0
        return w0, max(w0, len(self.compute_s))

    def window_times(self) -> tuple[list[float], list[float]]:
        """Data wait and compute of the measured window (warm-up dropped)."""
        s, e = self.window_range()
        return self.data_wait_s[s:e], self.compute_s[s:e]

    def window_images(self) -> list[int | None]:
        s, e = self.window_range()
        return self.images[s:e]

    def window_steps_s(self) -> float:
        """Optimizer step time spent inside the window."""
        s, e = self.window_range()
        return sum(d for d, i in zip(self.step_s, self.step_iters, strict=True) if s <= i < e)

    def steady_steps(self) -> list[float]:
        """Optimizer step durations after the first `step_discard` steps."""
        return self.step_s[self.step_discard :]
