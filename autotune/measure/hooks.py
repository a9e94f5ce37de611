"""The probe's Ultralytics callbacks: restore what Ultralytics changes, time every iteration, stop at a full window.

`ProbeHooks` holds the state the callbacks share (the trainer, the effective settings, the last batch) and drives an
IterationRecorder. What touches the machine (page cache, profilers, loader processes) is injected, so tests drive
the callbacks by hand with a fake trainer, like train.EpochTracker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autotune.measure.timing import MEASURE, WARMUP, IterationRecorder
from autotune.measure.ultralytics_glue import (
    effective,
    keep_oom_an_oom,
    loader_worker_pids,
    mosaic_on,
    ready_batches,
    restore_workers,
    set_val_batch,
)

STEP_SAMPLES = 3  # steady optimizer steps timed in the warm-up (MuSGD's step is seconds on a CPU: keep it few)

Heartbeat = Callable[[dict[str, Any]], Any]


class WindowFull(Exception):
    """Raised from a callback to stop Ultralytics once the measured window is complete."""


@dataclass
class Probes:
    """What the hooks do to the machine around the window; the defaults do nothing (tests)."""

    at_setup: Callable[[Any], None] = lambda trainer: None  # once loaders exist (damaged images, .npy eviction)
    at_start: Callable[[], None] = lambda: None  # when the first epoch starts (page-cache state)
    start_profilers: Callable[[Any], None] = lambda trainer: None  # when the window opens
    stop_profilers: Callable[[], dict[str, Any]] = lambda: {}  # when it is full: extras for the result
    live_workers: Callable[[Any], int] = lambda loader: len(loader_worker_pids(loader))
    queue_depth: Callable[[Any], int | None] = ready_batches  # batches the loader has ready (timing.py's window)
    sleep: Callable[[float], None] = time.sleep  # the simulated slow first iteration (ProbeOptions)


@dataclass
class ProbeHooks:
    """The callbacks of one probe. Register `callbacks()` on an Ultralytics model before `train()`."""

    workers: int  # asked: Ultralytics zeroes it on a CPU, restored before any loader exists
    iters: int
    warmup_max: int
    recorder: IterationRecorder
    heartbeat: Heartbeat = lambda beat: None
    keep_last_batch: bool = False  # for the compute-only pass after the window
    first_iter_delay_s: float = 0.0  # added to the first iteration: a GPU's slow start, simulated on a CPU
    val_batch: int | None = None  # validation batch; None: Ultralytics' 2x the training batch
    machine: Probes = field(default_factory=Probes)
    trainer: Any = None
    eff: dict[str, Any] = field(default_factory=dict)  # effective settings, read at the end of set-up
    extras: dict[str, Any] = field(default_factory=dict)  # what the profilers recorded
    loader_procs: int = 0  # live loader worker processes during the window, at most
    last_batch: dict[str, Any] | None = None

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        return {
            "on_pretrain_routine_start": self.on_pretrain_routine_start,
            "on_pretrain_routine_end": self.on_pretrain_routine_end,
            "on_train_epoch_start": self.on_train_epoch_start,
            "on_train_batch_start": self.on_train_batch_start,
            "on_train_batch_end": self.on_train_batch_end,
        }

    def on_pretrain_routine_start(self, trainer: Any) -> None:
        restore_workers(trainer, self.workers)
        if self.val_batch:
            set_val_batch(trainer, self.val_batch)
        self.trainer = trainer
        self.heartbeat({"phase": "building"})

    def on_pretrain_routine_end(self, trainer: Any) -> None:
        ds = trainer.train_loader.dataset
        # .npy files next to the staged images when training starts: with cache=disk the subset's own,
        # otherwise none, so every image is decoded from its file as the user's run would
        self.eff.update(effective(trainer), npy_files=sum(1 for f in ds.npy_files if f.exists()))
        self._time_steps(trainer)
        self._count_images(trainer)
        loader, depth = trainer.train_loader, self.machine.queue_depth
        self.recorder.depth = lambda: depth(loader)
        self.machine.at_setup(trainer)

    def _count_images(self, trainer: Any) -> None:
        """Every batch passes preprocess_batch: count its images (an epoch's last batch is short), keep the last
        one for the compute-only pass."""
        original = trainer.preprocess_batch
        recorder = self.recorder

        def counted(batch: dict[str, Any]) -> dict[str, Any]:
            recorder.count_images(len(batch["img"]))
            out = original(batch)
            if self.keep_last_batch:
                self.last_batch = out
            return out

        trainer.preprocess_batch = counted

    def _time_steps(self, trainer: Any) -> None:
        """The optimizer step runs every `accumulate` iterations: timed apart, spread over its period later."""
        original = trainer.optimizer_step
        recorder = self.recorder

        def timed_step() -> None:
            recorder.step_start()
            original()
            recorder.step_end()

        trainer.optimizer_step = timed_step

    def want_forced_steps(self) -> bool:
        r = self.recorder
        return r.phase == WARMUP and len(r.step_s) < r.step_discard + STEP_SAMPLES

    def on_train_epoch_start(self, trainer: Any) -> None:
        keep_oom_an_oom(trainer)
        if self.want_forced_steps():
            # Step on every early warm-up iteration: the step's cost is then known from several samples
            # without a longer window; the window itself runs at the real accumulation period (restored below).
            trainer.accumulate = 1
        if self.recorder.n_seen == 0:
            self.recorder.mark()
            self.machine.at_start()

    def on_train_batch_start(self, trainer: Any) -> None:
        self.recorder.batch_start()
        if "mosaic" not in self.eff:  # after the epoch start, where Ultralytics closes mosaic
            self.eff["mosaic"] = mosaic_on(trainer.train_loader.dataset)

    def on_train_batch_end(self, trainer: Any) -> None:
        r = self.recorder
        if r.n_seen == 0 and self.first_iter_delay_s:
            self.machine.sleep(self.first_iter_delay_s)
        before = r.phase
        r.batch_end()
        phase = r.phase
        if before == WARMUP and not self.want_forced_steps():
            trainer.accumulate = self.eff["accumulate"]
        if before == WARMUP and phase != WARMUP:
            self.machine.start_profilers(trainer)
        if phase == MEASURE:
            self.loader_procs = max(self.loader_procs, self.machine.live_workers(trainer.train_loader))
        self.heartbeat(self.beat())
        if r.done:
            self.extras.update(self.machine.stop_profilers())
            raise WindowFull

    def beat(self) -> dict[str, Any]:
        """Progress for the caller: the phase, the last iteration, an estimate of the time left, and the window's
        mean so far (it lets a search prune a clearly slower trial early)."""
        r = self.recorder
        last = r.last_total()
        todo = (self.warmup_max if r.warmup is None else r.warmup) + self.iters - r.n_seen
        beat: dict[str, Any] = {"phase": r.phase, "iter": r.n_seen, "iter_s": last, "eta_s": max(todo, 0) * last}
        if r.warmup is not None:
            waits, computes = r.window_times()
            if computes:
                seconds = sum(waits) + sum(computes) + r.window_steps_s()
                beat.update(measured=len(computes), window_s=seconds / len(computes))
        return beat
