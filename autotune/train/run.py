"""autotune train: the full Ultralytics run with the measured settings, each epoch timed against its prediction.

Ultralytics' own trainer runs in this process with callbacks: on_train_epoch_start / on_train_epoch_end time an
epoch's training (and count its images), a wrapper around trainer.validate times its validation (and skips it on
the epochs --val-every leaves out), --val-batch builds the validation loader at its batch, and
on_fit_epoch_end closes the epoch (its checkpoint saved); Ultralytics' final validation of best.pt is timed apart.
After each epoch the run's record goes to the study (through the study store) and to autotune_epochs.json in
Ultralytics' run folder, so Ctrl-C loses nothing; `--resume` continues from last.pt and appends to the record.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from autotune.files import atomic_write
from autotune.measure.ultralytics_glue import (
    close_loaders,
    effective,
    expected_workers,
    import_quietly,
    mismatches,
    mosaic_on,
    patch_downloads,
    restore_workers,
    set_val_batch,
)
from autotune.records.config import TrainConfig
from autotune.records.run import EpochRecord, Session, TrainRun
from autotune.search.store import StudyStore
from autotune.train.predict import Rates, RunPrediction, RunShape

EPOCHS_JSON = "autotune_epochs.json"  # beside Ultralytics' results.csv
TOLERANCE = 0.15  # an epoch's training this far off its prediction gets a warning with likely causes

Event = Callable[[str, dict[str, Any]], None]


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def resumable_run(runs: list[TrainRun]) -> TrainRun | None:
    """The latest run that did not finish and still has its last.pt."""
    for run in reversed(runs):
        if run.status != "finished" and run.save_dir and run.last_pt.is_file():
            return run
    return None


def headline_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """mAP50 and mAP50-95 from Ultralytics' metric names, e.g. 'metrics/mAP50-95(B)'."""
    out = {}
    for key, value in metrics.items():
        name = key.removeprefix("metrics/").split("(")[0]
        if name in ("mAP50", "mAP50-95", "precision", "recall"):
            out[name] = value
    return out


def likely_causes(
    error: float, first_in_session: bool, other_cores: float | None, cores: int, gpu_others: int | None
) -> list[str]:
    """Why an epoch's training was off its prediction: measured evidence first, then causes nothing here measures."""
    if error < 0:
        return [
            "the probes ran slower than this run: disturbed while measuring, or files colder then than now",
        ]
    causes = []
    if other_cores is not None and other_cores >= 0.25:
        causes.append(f"CPU contention: other processes kept {other_cores:.1f} of {cores} cores busy")
    if gpu_others:
        causes.append(f"another process on the GPU ({gpu_others} besides this one)")
    if first_in_session:
        causes.append("first epoch: a cold disk cache (images read from disk) and loader start-up")
    causes.append("thermal throttling or lower clocks")
    if not first_in_session:
        causes.append("a cold disk cache (the files no longer fit in RAM alongside the rest)")
    return causes


# -- measuring what else runs on the machine ----------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """Cumulative CPU seconds of the whole machine and of this process tree, at one moment."""

    wall_s: float
    machine_busy_s: float | None  # None where the machine's counters cover more cores than this process may use
    tree_s: float
    gpu_others: int | None = None


def sample_load(gpu_index: int | None = None) -> Load:
    me = psutil.Process()
    tree = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            tree += t.user + t.system
        except psutil.Error:
            continue
    busy = None
    if (psutil.cpu_count() or 0) == len(os.sched_getaffinity(0)):
        c = psutil.cpu_times()
        busy = c.user + c.system + getattr(c, "nice", 0.0) + getattr(c, "irq", 0.0) + getattr(c, "softirq", 0.0)
    return Load(time.monotonic(), busy, tree, gpu_processes(gpu_index) if gpu_index is not None else None)


def other_cores(a: Load, b: Load) -> float | None:
    """Cores other processes kept busy between two samples, on average."""
    if a.machine_busy_s is None or b.machine_busy_s is None or b.wall_s <= a.wall_s:
        return None
    return max((b.machine_busy_s - a.machine_busy_s) - (b.tree_s - a.tree_s), 0.0) / (b.wall_s - a.wall_s)


def gpu_processes(index: int) -> int | None:
    """Compute processes on the GPU other than this one (NVML); None where it cannot be read."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver or library: not knowable here, which the caller shows as unknown
        return None
    try:
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(pynvml.nvmlDeviceGetHandleByIndex(index))
        return sum(1 for p in procs if p.pid != os.getpid())
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


# -- the tracker --------------------------------------------------------------------------------------------------


class EpochTracker:
    """Ultralytics callbacks that time each epoch, set it against the prediction and keep the record.

    Clock and load sampler are injected: tests drive the callbacks by hand with a fake trainer.
    """

    def __init__(
        self,
        run: TrainRun,
        expected: TrainConfig,
        on_event: Event,
        persist: Callable[[TrainRun], None],
        clock: Callable[[], float] = time.perf_counter,
        load: Callable[[], Load] | None = None,
    ) -> None:
        self.run = replace(run, sessions=(*run.sessions, Session(started=now_iso())))
        self.expected, self.on_event, self.persist, self.clock = expected, on_event, persist, clock
        gpu = None if expected.device == "cpu" else int(expected.device)
        self.load = load or (lambda: sample_load(gpu))
        self.prediction: RunPrediction | None = None
        self.t_start = self.t_epoch = self.t_train_end = self.t_last = clock()
        self.batches = 0
        self.val_s: float | None = None
        self.in_epoch = False
        self.first_epoch = True
        self.load_start: Load | None = None
        self.epoch_mosaic: bool | None = None
        self.batch_changed = False

    @property
    def session(self) -> int:
        return len(self.run.sessions) - 1

    def _session(self, **changes: Any) -> None:
        sessions = list(self.run.sessions)
        sessions[-1] = replace(sessions[-1], **changes)
        self.run = replace(self.run, sessions=tuple(sessions))

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        return {
            "on_pretrain_routine_start": self.on_pretrain_routine_start,
            "on_pretrain_routine_end": self.on_pretrain_routine_end,
            "on_train_epoch_start": self.on_train_epoch_start,
            "on_train_batch_end": self.on_train_batch_end,
            "on_train_epoch_end": self.on_train_epoch_end,
            "on_fit_epoch_end": self.on_fit_epoch_end,
        }

    def begin(self) -> None:
        self.t_start = self.clock()

    def on_pretrain_routine_start(self, trainer: Any) -> None:
        restore_workers(trainer, self.expected.workers)  # the probes measured the workers asked for
        if self.run.val_batch:
            set_val_batch(trainer, self.run.val_batch)
        self.run = replace(self.run, save_dir=str(trainer.save_dir))

    def on_pretrain_routine_end(self, trainer: Any) -> None:
        setup_s = self.clock() - self.t_start
        shape = shape_of(trainer, self.run.val_every)
        self.prediction = Rates.from_dict(self.run.rates).predict(shape)
        self._session(
            start_epoch=shape.start_epoch,
            setup_s=setup_s,
            predicted_setup_s=self.prediction.setup_s if self.prediction else None,
        )
        self.run = replace(
            self.run,
            epochs=shape.epochs,
            prediction=self.prediction.to_dict() if self.prediction else None,
            predicted_final_val_s=self.prediction.final_val_s if self.prediction else None,
        )
        changed = effective_changes(trainer, self.expected, self.run.optimizer)
        if changed:
            self.run = replace(self.run, warnings=(*self.run.warnings, *changed))
            for text in changed:
                self.on_event("warning", {"text": text})
        original = trainer.validate

        def timed_validate() -> Any:
            if skips_validation(trainer, self.run.val_every):
                return trainer.metrics, None  # no new fitness: early stopping and best.pt wait for a validation
            t0 = self.clock()
            try:
                return original()
            finally:
                self.val_s = (self.val_s or 0.0) + self.clock() - t0

        trainer.validate = timed_validate
        self.on_event("start", {"run": self.run, "prediction": self.prediction, "setup_s": setup_s})
        self._persist()
        self.t_last = self.clock()

    def on_train_epoch_start(self, trainer: Any) -> None:
        self.batches, self.val_s, self.in_epoch = 0, None, True
        self.load_start = self.load()
        self.t_epoch = self.clock()

    def on_train_batch_end(self, trainer: Any) -> None:
        self.batches += 1

    def on_train_epoch_end(self, trainer: Any) -> None:
        self.t_train_end = self.clock()
        self.epoch_mosaic = mosaic_on(trainer.train_loader.dataset)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        now = self.clock()
        if not self.in_epoch:  # Ultralytics' final validation of best.pt calls this once more
            self.run = replace(
                self.run, final_val_s=now - self.t_last, final_metrics=_numbers(getattr(trainer, "metrics", None))
            )
            self.on_event("final", {"run": self.run})
            self._persist()
            return
        self.in_epoch = False
        load_end = self.load()
        train_s = self.t_train_end - self.t_epoch
        val_s = self.val_s
        plan = self.prediction.epoch(trainer.epoch + 1) if self.prediction else None
        nb, batch = len(trainer.train_loader), int(trainer.batch_size)
        n_train = len(trainer.train_loader.dataset)
        images = n_train if self.batches >= nb else self.batches * batch
        if batch != self.expected.batch and not self.batch_changed:
            self.batch_changed = True
            self.on_event(
                "warning",
                {"text": f"Ultralytics changed batch {self.expected.batch} -> {batch} (out of memory): "
                 "the measured settings no longer hold, nor the prediction"},
            )  # fmt: skip
        record = EpochRecord(
            epoch=trainer.epoch + 1,
            epochs=int(trainer.epochs),
            phase=plan.phase if plan else "",
            mosaic=self.epoch_mosaic,
            train_s=train_s,
            val_s=val_s,
            other_s=max(now - self.t_train_end - (val_s or 0.0), 0.0),
            images=images,
            predicted_train_s=plan.train_s if plan else None,
            predicted_val_s=plan.val_s if plan else None,
            metrics=_numbers(getattr(trainer, "metrics", None)) if val_s is not None else {},
            session=self.session,
        )
        self.run = replace(self.run, records=(*self.run.records, record))
        causes: list[str] = []
        err = record.train_error
        if err is not None and abs(err) > TOLERANCE:
            others = other_cores(self.load_start, load_end) if self.load_start else None
            causes = likely_causes(err, self.first_epoch, others, len(os.sched_getaffinity(0)), load_end.gpu_others)
        self.first_epoch = False
        self.on_event("epoch", {"record": record, "causes": causes})
        self._persist()
        self.t_last = self.clock()

    def finish(self, status: str, reason: str = "") -> TrainRun:
        self._session(status=status, reason=reason, ended=now_iso())
        self._persist()
        return self.run

    def _persist(self) -> None:
        try:
            self.persist(self.run)
        except Exception as e:  # the run goes on; the record still reaches whichever store works, and we say so
            self.on_event("warning", {"text": f"could not save the epoch record: {type(e).__name__}: {e}"})


def _numbers(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, dict):
        return {}
    return {str(k): float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def skips_validation(trainer: Any, val_every: int) -> bool:
    """--val-every k: this epoch's validation is skipped unless it is a k-th, or Ultralytics must validate (the last
    epoch, early stopping about to stop)."""
    if val_every <= 1 or (trainer.epoch + 1) % val_every == 0:
        return False
    return not (trainer.epoch + 1 >= trainer.epochs or trainer.stopper.possible_stop or trainer.stop)


def shape_of(trainer: Any, val_every: int = 1) -> RunShape:
    """The run as Ultralytics is about to run it (after a resume set its start epoch)."""
    a = trainer.args
    return RunShape(
        n_train=len(trainer.train_loader.dataset),
        n_val=len(trainer.test_loader.dataset),
        batch=int(trainer.batch_size),
        epochs=int(trainer.epochs),
        nbs=int(a.nbs),
        warmup_epochs=float(a.warmup_epochs),
        close_mosaic=int(a.close_mosaic or 0),
        val=bool(a.val),
        start_epoch=int(trainer.start_epoch),
        val_every=val_every,
    )


def effective_changes(trainer: Any, expected: TrainConfig, optimizer: str) -> list[str]:
    """What Ultralytics changed of the measured settings, as sentences (the probe's own checks)."""
    eff = {**effective(trainer), "loader_processes": int(trainer.train_loader.num_workers)}
    capped = expected_workers(expected, len(trainer.train_loader.dataset))
    cuda = expected.device != "cpu"
    return [reason for _, reason in mismatches(expected, eff, {"optimizer": optimizer}, cuda, capped)]


# -- running it ---------------------------------------------------------------------------------------------------


def new_run(
    source: str,
    study: str | None,
    trial: int | None,
    profile: str | None,
    config: TrainConfig,
    args: dict[str, Any],
    optimizer: str,
    rates: Rates,
    machine: dict[str, Any],
    warnings: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
    val_every: int = 1,
    val_batch: int | None = None,
) -> TrainRun:
    run_id = f"{dt.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    return TrainRun(
        id=run_id,
        source=source,
        study=study,
        trial=trial,
        profile=profile,
        config=config.to_dict(),
        args=args,
        optimizer=optimizer,
        rates=rates.to_dict(),
        machine=machine,
        warnings=warnings,
        notes=notes,
        val_every=val_every,
        val_batch=val_batch,
    )


def persister(st: StudyStore | None) -> Callable[[TrainRun], None]:
    """Writes a run's record beside Ultralytics' results (autotune_epochs.json) and into the study."""

    def persist(run: TrainRun) -> None:
        if run.save_dir and Path(run.save_dir).is_dir():
            # never half a file, whenever Ctrl-C comes
            atomic_write(Path(run.save_dir) / EPOCHS_JSON, json.dumps(run.to_dict(), indent=1))
        if st is not None:
            st.put_train_run(run)

    return persist


def train(
    run: TrainRun,
    model: str,
    args: dict[str, Any],
    on_event: Event,
    persist: Callable[[TrainRun], None],
    resume: bool = False,
) -> TrainRun:
    """Train with Ultralytics in this process; always returns the run with its last session's status.

    resume: continue run.last_pt (Ultralytics takes every setting from the checkpoint).
    Ctrl-C ends the session as 'interrupted' (last.pt holds the last finished epoch); an error as 'crashed'.
    """
    import_quietly()
    from ultralytics import YOLO

    patch_downloads()
    expected = TrainConfig.from_dict(run.config)
    tracker = EpochTracker(run, expected, on_event, persist)
    kwargs = {"resume": str(run.last_pt)} if resume else {k: v for k, v in args.items() if k != "model"}
    status, reason = "finished", ""
    yolo = None
    try:
        tracker.begin()
        yolo = YOLO(str(run.last_pt) if resume else model)
        for event, fn in tracker.callbacks().items():
            yolo.add_callback(event, fn)
        yolo.train(**kwargs)
    except KeyboardInterrupt:
        status, reason = "interrupted", "Ctrl-C"
    except Exception as e:  # the run's record says how it ended; the traceback goes to stderr for the curious
        traceback.print_exc()
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        status, reason = "crashed", f"{type(e).__name__}: {first}".strip()
    finally:
        close_loaders(getattr(yolo, "trainer", None))  # loader workers must not outlive the run
    return tracker.finish(status, reason)
