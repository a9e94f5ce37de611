"""The Optuna study: seeds, objective, constraints, pruning, budget and storage.

Each trial is one isolated probe. The objective is the projected epoch time (training images / measured
images/s), minimised. A trial over the memory limit, out of memory, too slow to finish, or asking for a cache
this machine cannot hold is a *completed, infeasible* trial (`trial.set_constraint`, value INFEASIBLE_S), never
a FAIL, so the sampler learns where the wall is. The probe function and the clock are injected: tests drive
the whole search with a fake probe and an in-memory study.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from autotune import __version__, levers
from autotune.config import ProbeOptions, TrainConfig, Workload
from autotune.errors import UserError
from autotune.ladder import next_rung
from autotune.levers import LEVERS
from autotune.machine import Machine
from autotune.probe import ProbeResult
from autotune.space import (
    DatasetSize,
    MemoryModel,
    Space,
    cache_violation,
    fit_memory_model,
    memory_violation,
)
from autotune.stats import projected_epoch_s

INFEASIBLE_S = 1e9  # objective value of an infeasible trial: constraints carry the why, this keeps it last
PRUNE_FACTOR = 1.5  # "clearly slower": the running projection is 1.5x the best finished trial's
PRUNE_MIN_STEPS = 4  # measured iterations before a running trial may be pruned
HEARTBEAT_S = 60  # Optuna's heartbeat: a trial RUNNING with no beat for 2 intervals is failed

ProbeFn = Callable[..., ProbeResult]  # (config, workload, options, on_progress) -> ProbeResult
Clock = Callable[[], float]


def mask_url(url: str) -> str:
    """The storage URL with its password replaced: never printed, logged or written in clear."""
    return re.sub(r"(://[^:/@]+:)([^@]*)@", r"\1***@", url)


def default_study_name(workload: Workload, machine: Machine, space: Space, dataset_key: str) -> str:
    blob = json.dumps(
        {"model": workload.model, "data": dataset_key, "epochs": workload.epochs, "machine": machine.identity()},
        sort_keys=True,
    )
    return f"autotune-{hashlib.sha256(blob.encode()).hexdigest()[:8]}-{space.digest()}"


@dataclass(frozen=True)
class SearchSettings:
    budget_s: float
    storage: str
    study: str
    baseline: TrainConfig  # Ultralytics' defaults unless given; may lie outside the space
    probe_options: ProbeOptions
    memory_limit_bytes: int | None = None  # GPU memory on CUDA, RAM on CPU
    target_epoch_s: float | None = None
    seed: int = 0
    seeds: tuple[TrainConfig, ...] = ()  # extra seeds inside the space (AutoBatch's batch on a GPU)
    memory_limit_fraction: float | None = None  # the limit as a share of the device, for AutoBatch
    end_reserve_s: float | None = None  # kept back for the baseline's repeat; None: as long as the baseline took
    autobatch: dict[str, Any] | None = None  # AutoBatch's answer on a GPU: imgsz, fraction, batch or error
    lever_share: float = 0.25  # at most this share of the budget is kept for the report's factor probes (0: none)
    ladder_after: int | None = 4  # finished trials before the batch ladder proposes rungs (ladder.py); None: never


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING
    config: dict[str, Any]
    epoch_s: float | None  # projected epoch time; None unless feasible
    images_per_s: float | None
    sec_per_iter: float | None
    feasible: bool
    status: str  # the probe's status, or "skipped" when predicted infeasible without probing
    reason: str
    duration_s: float
    peak_memory_bytes: int | None


@dataclass(frozen=True)
class SearchOutcome:
    study: str
    storage: str  # masked
    space: Space
    n_train: int
    baseline: ProbeResult | None
    baseline_end: ProbeResult | None
    trials: tuple[TrialRecord, ...]
    front: tuple[TrialRecord, ...]  # fastest feasible config per image size
    winner: TrialRecord | None
    pick_reason: str
    stop_reason: str
    elapsed_s: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    interrupted: bool = False
    autobatch: dict[str, Any] | None = None  # AutoBatch's answer this run or an earlier one (study attribute)

    @property
    def drift(self) -> float | None:
        """Baseline images/s at the end over at the start, minus 1: how much the machine moved meanwhile."""
        a, b = self.baseline, self.baseline_end
        if a and b and a.stats and b.stats:
            return b.stats.images_per_s / a.stats.images_per_s - 1
        return None


class SlowerThanBest:
    """Prune a running trial whose projected epoch time is clearly (1.5x) worse than the best finished one."""

    def __init__(self, factor: float = PRUNE_FACTOR, min_steps: int = PRUNE_MIN_STEPS) -> None:
        self.factor, self.min_steps = factor, min_steps

    def prune(self, study: Any, trial: Any) -> bool:
        steps = trial.intermediate_values
        if len(steps) < self.min_steps:
            return False
        best = best_feasible_value(study.get_trials(deepcopy=False))
        return best is not None and steps[max(steps)] > self.factor * best


def best_feasible_value(trials: Any) -> float | None:
    values = [t.value for t in trials if _is_feasible(t)]
    return min(values) if values else None


def one_time_s(result: ProbeResult) -> float:
    """Seconds paid once per run for this config: its cache build and its resized copy (whole dataset)."""
    cache = result.cache.full_s if result.cache and result.cache.mode != "none" else 0.0
    return cache + (result.source_cost.full_s if result.source_cost else 0.0)


def _is_feasible(t: Any) -> bool:
    from optuna.trial import TrialState

    return t.state == TrialState.COMPLETE and t.value is not None and all(v <= 0 for v in t.constraints.values())


def open_storage(url: str) -> Any:
    """An Optuna RDB storage with heartbeats, or a UserError naming the (masked) URL."""
    import warnings

    import optuna
    from optuna.storages import RDBStorage

    if not re.match(r"^(sqlite|postgresql(\+\w+)?|mysql(\+\w+)?)://", url):
        raise UserError(f"storage URL {mask_url(url)!r} is not an Optuna RDB URL (sqlite:///file.db, postgresql://...)")
    last: Exception | None = None
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5; they are what we need
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # a trial left RUNNING by a dead worker stops beating and is failed when the next trial starts
                return RDBStorage(
                    url,
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=2 * HEARTBEAT_S,
                    engine_kwargs={"pool_pre_ping": True},
                )
        except ImportError as e:  # no driver: retrying will not help
            last = e
            break
        except Exception as e:  # driver errors vary by database; all end as one masked line
            # two workers starting on an empty database race to create Optuna's tables: the loser retries
            last = e
            time.sleep(1.0 + attempt)
    text = str(last).strip().splitlines()[0] if last is not None and str(last).strip() else type(last).__name__
    raise UserError(f"cannot open storage {mask_url(url)}: {mask_url(text)}")


@contextlib.contextmanager
def host_lock(path: Path) -> Iterator[None]:
    """Probes on one host never overlap: they would disturb each other's timings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _record(t: Any) -> TrialRecord:
    return record_from(t.number, t.state.name, t.value, _is_feasible(t), t.user_attrs)


def record_from(number: int, state: str, value: float | None, feasible: bool, ua: dict[str, Any]) -> TrialRecord:
    """A trial's record from its plain parts (an Optuna trial's, or a report snapshot's)."""
    return TrialRecord(
        number=number,
        state=state,
        config=ua.get("config", {}),
        epoch_s=value if feasible else None,
        images_per_s=ua.get("images_per_s"),
        sec_per_iter=ua.get("sec_per_iter"),
        feasible=feasible,
        status=ua.get("status", state.lower()),
        reason=ua.get("reason", ""),
        duration_s=float(ua.get("duration_s", 0.0)),
        peak_memory_bytes=ua.get("peak_memory_bytes"),
    )


def trial_records(study: Any) -> tuple[TrialRecord, ...]:
    """Every trial of a study that has started, as records."""
    return tuple(_record(t) for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING")


def front(records: tuple[TrialRecord, ...] | list[TrialRecord]) -> tuple[TrialRecord, ...]:
    """For each image size, its fastest feasible config: the speed vs resolution front."""
    best: dict[int, TrialRecord] = {}
    for r in records:
        if r.feasible and r.epoch_s is not None:
            s = int(r.config["imgsz"])
            if s not in best or r.epoch_s < (best[s].epoch_s or math.inf):
                best[s] = r
    return tuple(best[s] for s in sorted(best))


def pick(
    records: tuple[TrialRecord, ...] | list[TrialRecord], target_epoch_s: float | None
) -> tuple[TrialRecord | None, str]:
    """The winner: fastest overall; with a target, the fastest config at the largest image size meeting it."""
    f = front(records)
    if not f:
        return None, "no feasible trial"
    fastest = min(f, key=lambda r: r.epoch_s or math.inf)
    if target_epoch_s is None:
        return fastest, "fastest projected epoch"
    meeting = [r for r in f if (r.epoch_s or math.inf) <= target_epoch_s]
    if not meeting:
        return fastest, f"no image size meets the {target_epoch_s:.0f} s target: the fastest config instead"
    best = max(meeting, key=lambda r: int(r.config["imgsz"]))
    return (
        best,
        f"largest image size ({best.config['imgsz']}) whose fastest config meets the {target_epoch_s:.0f} s target",
    )


def _constraint_values(result: ProbeResult, limit: int | None) -> tuple[float, float, str]:
    """(memory, other) constraint values (<= 0 feasible) and the reason."""
    peak = _peak_memory(result)
    if result.status in ("oom", "over_limit"):
        return 1.0, 0.0, result.reason
    if result.status != "ok":
        return 0.0, 1.0, result.reason
    if limit is not None and peak is not None:
        return (peak - limit) / limit, 0.0, ""
    return 0.0, 0.0, ""


def _peak_memory(result: ProbeResult) -> int | None:
    m = result.memory
    if m is None:
        return None
    if m.peak_gpu_reserved_bytes is not None:
        return max(m.peak_gpu_reserved_bytes, m.val_peak_gpu_bytes or 0)
    return max(m.peak_host_bytes, m.val_peak_host_bytes or 0)


class Search:
    """One worker's part of a study. Several workers (hosts) may share a study through its storage."""

    def __init__(
        self,
        settings: SearchSettings,
        space: Space,
        workload: Workload,
        machine: Machine,
        dataset: DatasetSize,
        n_train: int,
        probe_fn: ProbeFn,
        storage: Any,
        clock: Clock = time.monotonic,
        ram_available: int = 0,
        disk_free: int = 0,
        lock_path: Path | None = None,
        on_event: Callable[[str, dict[str, Any]], None] = lambda _e, _d: None,
    ) -> None:
        self.s, self.space, self.workload, self.machine = settings, space, workload, machine
        self.dataset, self.n_train, self.probe_fn, self.clock = dataset, n_train, probe_fn, clock
        self.ram_available, self.disk_free, self.lock_path = ram_available, disk_free, lock_path
        self.on_event = on_event
        self.study = self._open_study(storage)
        self.t0 = clock()
        self.deadline = self.t0 + settings.budget_s
        self.durations: list[float] = []
        self.notes: list[str] = []
        self.worker = f"{machine.hostname}:{os.getpid()}"  # which worker ran a trial, in a shared study

    # -- study ----------------------------------------------------------------------------------------------------

    def _open_study(self, storage: Any) -> Any:
        import optuna

        # Optuna logs a failed trial with its traceback; autotune reports failures and Ctrl-C in its own words
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.create_study(
            study_name=self.s.study,
            storage=storage,
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=self.s.seed, n_startup_trials=5, multivariate=True),
            pruner=SlowerThanBest(),
            load_if_exists=True,
        )
        if "space" not in study.user_attrs:  # a new study: freeze what it is about
            study.set_user_attr("machine", self.machine.to_dict())
            study.set_user_attr("machine_id", self.machine.identity_hash())
            study.set_user_attr("workload", {**self.workload.to_dict(), "n_train": self.n_train})
            study.set_user_attr("baseline_config", self.s.baseline.to_dict())
            study.set_user_attr("memory_limit_bytes", self.s.memory_limit_bytes)
            study.set_user_attr("dataset", asdict(self.dataset))  # images (train + val), mean size: the report's
            study.set_user_attr("target_epoch_s", self.s.target_epoch_s)
            study.set_user_attr("probe_options", self.s.probe_options.to_dict())  # `report --measure` probes alike
            study.set_user_attr("autotune_version", __version__)
            if self.s.autobatch:
                study.set_user_attr("autobatch", self.s.autobatch)
            # "space" goes last: a worker that joins sees it only once everything above is stored. Two workers
            # starting together may both write all of it; the checks below, on a fresh read, catch a mismatch.
            study.set_user_attr("space", self.space.to_dict())
        ua = study.user_attrs
        if ua.get("machine_id") != self.machine.identity_hash():
            theirs = Machine.from_dict(ua["machine"]).summary() if "machine" in ua else "another machine"
            raise UserError(
                f"study {self.s.study!r} was measured on {theirs}; this machine is {self.machine.summary()}: "
                "timings are not comparable, so this worker will not join (use another --study)"
            )
        stored = Space.from_dict(ua["space"])
        if stored != self.space:
            raise UserError(
                f"study {self.s.study!r} searches {stored.describe()}; this command asks for {self.space.describe()}: "
                "a study's space is frozen (use --fresh or another --study)"
            )
        return study

    # -- budget ---------------------------------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def predicted_trial_s(self) -> float:
        """A trial is predicted to take as long as the slowest one so far (probes vary with batch and imgsz)."""
        return max(self.durations) if self.durations else 0.0

    def end_reserve(self) -> float:
        if self.s.end_reserve_s is not None:
            return self.s.end_reserve_s
        b = self.study.user_attrs.get("baseline")
        return float(b.get("duration_s", 0.0)) if b else 0.0

    def lever_reserve(self) -> float:
        """Kept for the factor probes at the end: one probe per lever (4) and the optimizer's, at most
        `lever_share` of the budget. Whatever it cannot fit, `autotune report --measure` measures later."""
        if self.s.lever_share <= 0:
            return 0.0
        typical = statistics.median(self.durations) if self.durations else self.end_reserve()
        return min(self.s.lever_share * self.s.budget_s, (len(LEVERS) + 1) * typical)

    def _baseline_trial_is_next(self) -> bool:
        """The seeded baseline trial waits next and will reuse the reference measurement: it costs no probe time.
        (In a shared study another worker may take it first; then one trial may run past this worker's budget.)"""
        from optuna.trial import TrialState

        ua = self.study.user_attrs
        if not ua.get("baseline") or ua.get("baseline_reused") or not self.space.contains(self.s.baseline):
            return False
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return bool(waiting) and waiting[0].system_attrs.get("fixed_params") == self.space.params(self.s.baseline)

    def budget_note(self) -> str | None:
        """Said once the baseline is measured, where the budget leaves room for too few probes to search."""
        b = self.study.user_attrs.get("baseline")
        probe_s = float(b.get("duration_s", 0.0)) if b else 0.0
        if probe_s <= 0:
            return None
        fits = max(self.remaining() - self.end_reserve() - self.lever_reserve(), 0.0) / probe_s
        if fits >= 3:
            return None
        # ~10 trials, the baseline and its repeat, with the factor probes' share of the budget on top
        enough_min = math.ceil(12 * probe_s / (1 - min(self.s.lever_share, 0.5)) / 60)
        return (
            f"the budget leaves room for about {int(fits)} probe(s) of ~{probe_s:.0f} s besides the baseline: too few "
            f"to search (--budget {enough_min}min or more gives ~10)"
        )

    def can_start_trial(self) -> tuple[bool, str]:
        if self._baseline_trial_is_next():
            return True, ""
        left = self.remaining() - self.end_reserve() - self.lever_reserve()
        need = self.predicted_trial_s()
        if left <= 0 or left < need:
            return False, (
                f"budget: {max(left, 0):.0f} s left after the factor probes and the baseline's repeat, "
                f"a trial takes ~{need:.0f} s"
            )
        return True, ""

    # -- probes ---------------------------------------------------------------------------------------------------

    def _probe(self, config: TrainConfig, on_progress: Callable[[dict[str, Any]], Any] | None = None) -> ProbeResult:
        options = self.s.probe_options
        if options.timeout_s is None:  # never let one probe run far past the budget
            options = replace(options, timeout_s=max(self.remaining(), 60.0) + 60.0)
        if self.s.memory_limit_bytes is not None:
            options = replace(options, memory_limit=f"{self.s.memory_limit_bytes}B")
        with self._host_lock():
            t0 = self.clock()
            result = self.probe_fn(config, self.workload, options, on_progress)
            self.durations.append(self.clock() - t0)
        return result

    def _host_lock(self) -> contextlib.AbstractContextManager[None]:
        return host_lock(self.lock_path) if self.lock_path else contextlib.nullcontext()

    def measure_baseline(self, key: str = "baseline") -> ProbeResult | None:
        """A reference probe stored with the study, outside the sampler (it may lie outside the space).

        Another worker may be measuring it right now: the host lock serialises probes, and the stored value is
        looked up again once the lock is ours (workers on other hosts may still measure it twice: harmless).
        """
        stored = self.study.user_attrs.get(key)
        if stored:
            return ProbeResult.from_dict(stored)
        self.on_event("reference", {"key": key, "config": self.s.baseline})
        with self._host_lock():
            stored = self.study.user_attrs.get(key)
            if stored:
                return ProbeResult.from_dict(stored)
            lock_path, self.lock_path = self.lock_path, None  # held already: _probe must not wait for itself
            try:
                result = self._probe(self.s.baseline)
            finally:
                self.lock_path = lock_path
        self.study.set_user_attr(key, result.to_dict())
        self.on_event("reference_done", {"key": key, "result": result})
        return result

    def enqueue_seeds(self) -> None:
        for seed in (self.s.baseline, *self.s.seeds):
            if self.space.contains(seed):
                self.study.enqueue_trial(self.space.params(seed), skip_if_exists=True)

    def climb_ladder(self) -> None:
        """Enqueue the batch ladder's next rung (the best config at a larger batch) once the queue is empty."""
        from optuna.trial import TrialState

        if self.s.ladder_after is None:
            return
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING))
        if any(t.state == TrialState.WAITING for t in trials) or len(trials) < self.s.ladder_after:
            return
        rung = next_rung(trial_records(self.study), self.space, self.memory_model(), self.s.memory_limit_bytes)
        if rung is not None:
            config = TrainConfig.from_dict(rung)
            self.study.enqueue_trial(self.space.params(config), skip_if_exists=True)
            self.on_event("rung", {"config": config})

    def memory_model(self) -> MemoryModel | None:
        points = []
        for t in self.study.get_trials(deepcopy=False):
            ua = t.user_attrs
            if _is_feasible(t) and ua.get("peak_memory_bytes") and ua.get("config"):
                points.append((int(ua["config"]["batch"]), int(ua["config"]["imgsz"]), int(ua["peak_memory_bytes"])))
        return fit_memory_model(points)

    def objective(self, trial: Any) -> float:
        import optuna

        sp = self.space
        config = self.s.baseline.with_(
            batch=trial.suggest_int("batch", sp.batch_low, sp.batch_high, log=sp.batch_high > sp.batch_low),
            workers=trial.suggest_int("workers", 0, sp.workers_high),
            imgsz=trial.suggest_categorical("imgsz", list(sp.imgsz)),
            cache=trial.suggest_categorical("cache", list(sp.cache)),
            source=trial.suggest_categorical("source", list(sp.source)) if len(sp.source) > 1 else sp.source[0],
        )
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("worker", self.worker)
        self.on_event("trial", {"number": trial.number, "config": config})
        why = cache_violation(self.dataset, config.cache, config.imgsz, self.ram_available, self.disk_free)
        if why is None and self.s.memory_limit_bytes is not None:
            why = memory_violation(self.memory_model(), config.batch, config.imgsz, self.s.memory_limit_bytes)
            if why:
                return self._infeasible(trial, "skipped", why, memory=1.0)
        if why:
            return self._infeasible(trial, "skipped", why, other=1.0)

        def on_progress(beat: dict[str, Any]) -> bool:
            """Report the running projection; True asks isolate to stop the probe (pruned)."""
            self.on_event("beat", beat)
            if beat.get("phase") != "measure" or not beat.get("window_s"):
                return False
            trial.report(projected_epoch_s(self.n_train, config.batch / beat["window_s"]), int(beat.get("measured", 0)))
            return trial.should_prune()

        result = self._reuse_baseline(config) or self._probe(config, on_progress)
        trial.set_user_attr("result", result.to_dict())
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("reason", result.reason)
        trial.set_user_attr("duration_s", result.duration_s)
        trial.set_user_attr("peak_memory_bytes", _peak_memory(result))
        if result.status == "pruned":
            self.on_event("pruned", {"number": trial.number, "config": config})
            raise optuna.TrialPruned(result.reason)
        if result.status == "crashed":
            self.on_event("failed", {"number": trial.number, "reason": result.reason})
            raise RuntimeError(f"probe crashed: {result.reason}")  # a FAIL: not a wall the sampler should learn
        memory, other, reason = _constraint_values(result, self.s.memory_limit_bytes)
        if memory > 0 or other > 0 or result.stats is None:
            return self._infeasible(trial, result.status, reason or result.reason, memory=memory, other=other)
        trial.set_constraint("memory", memory)
        trial.set_constraint("other", 0.0)
        trial.set_user_attr("images_per_s", result.stats.images_per_s)
        trial.set_user_attr("sec_per_iter", result.stats.sec_per_iter_median)
        # one-time costs (a cache build, a resized copy) spread over the planned run's epochs
        one_time = one_time_s(result)
        trial.set_user_attr("one_time_s", one_time)
        value = projected_epoch_s(self.n_train, result.stats.images_per_s) + one_time / self.workload.epochs
        self.on_event("done", {"number": trial.number, "config": config, "epoch_s": value, "result": result})
        return value

    def measure_levers(self, baseline: ProbeResult, repeats: int = 1) -> int:
        """The report's factor probes for the current winner, while they fit before the baseline's repeat.

        With repeats > 1 (`autotune report --measure --repeats N`) the baseline and the winner are measured
        again too, so the end-to-end speedup gets an interval like the single factors.
        """
        trials = [t for t in self.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        winner, _ = pick(tuple(_record(t) for t in trials), self.s.target_epoch_s)
        if winner is None:
            return 0
        winner_config = TrainConfig.from_dict(winner.config)
        probes = levers.lever_probes(self.s.baseline, winner_config, baseline.effective.get("optimizer"))
        if repeats > 1:
            probes = [
                levers.LeverProbe("baseline", self.s.baseline, "", ""),
                levers.LeverProbe("winner", winner_config, "", ""),
                *probes,
            ]
        results = [ProbeResult.from_dict(t.user_attrs["result"]) for t in trials if t.user_attrs.get("result")]
        todo = levers.still_missing(probes, self.study.user_attrs, results, self.s.baseline, repeats)
        model = self.memory_model()

        def skip_reason(c: TrainConfig) -> str | None:
            why = cache_violation(self.dataset, c.cache, c.imgsz, self.ram_available, self.disk_free)
            if why is None and self.s.memory_limit_bytes is not None:
                why = memory_violation(model, c.batch, c.imgsz, self.s.memory_limit_bytes)
            return why

        def can_start() -> bool:
            return self.remaining() - self.end_reserve() >= self.predicted_trial_s()

        n = levers.run_lever_probes(
            todo,
            self.workload,
            lambda c: self._probe(c),
            lambda: self.study.user_attrs,
            self.study.set_user_attr,
            can_start,
            skip_reason,
            self.on_event,
        )
        if n < len(todo):
            self.notes.append(
                f"{len(todo) - n} factor probe(s) did not fit the budget: `autotune report --measure` runs them"
            )
        return n

    def _reuse_baseline(self, config: TrainConfig) -> ProbeResult | None:
        """The seeded baseline trial is the reference probe already measured: no need to pay for it twice."""
        stored = self.study.user_attrs.get("baseline")
        if config != self.s.baseline or not stored or self.study.user_attrs.get("baseline_reused"):
            return None
        self.study.set_user_attr("baseline_reused", True)
        return ProbeResult.from_dict(stored)

    def _infeasible(self, trial: Any, status: str, reason: str, memory: float = 0.0, other: float = 0.0) -> float:
        trial.set_constraint("memory", max(memory, 0.0))
        # with no memory violation, something else made it unusable: say so in the other constraint
        trial.set_constraint("other", other if other > 0 else (0.0 if memory > 0 else 1.0))
        trial.set_user_attr("status", status)
        trial.set_user_attr("reason", reason)
        self.on_event("infeasible", {"number": trial.number, "status": status, "reason": reason})
        return INFEASIBLE_S

    # -- the loop -------------------------------------------------------------------------------------------------

    def run(self) -> SearchOutcome:
        stop_reason = ""
        baseline = self.measure_baseline("baseline")
        self.enqueue_seeds()
        note = self.budget_note()
        if note:
            self.notes.append(note)
            self.on_event("note", {"text": note})
        interrupted = False
        try:
            while True:
                ok, why = self.can_start_trial()
                if not ok:
                    stop_reason = why
                    break
                self.climb_ladder()  # only right before a trial starts: a rung never waits in the study unrun
                self.study.optimize(self.objective, n_trials=1, catch=(RuntimeError,), gc_after_trial=False)
        except KeyboardInterrupt:
            interrupted = True
            stop_reason = "interrupted (Ctrl-C): every finished trial is kept; run the same command to resume"
        if not interrupted and baseline is not None and self.s.lever_share > 0:
            try:
                self.measure_levers(baseline)
            except KeyboardInterrupt:
                interrupted = True
                stop_reason = "interrupted (Ctrl-C) during the factor probes: everything finished is kept"
        baseline_end = None
        if interrupted or baseline is None:
            pass
        elif self.remaining() < 0.9 * self.end_reserve():
            self.notes.append("no time was left to measure the baseline again: drift not measured this run")
        else:  # each run ends by measuring the baseline again: how far the machine drifted meanwhile
            self.on_event("reference", {"key": "baseline_end", "config": self.s.baseline})
            baseline_end = self._probe(self.s.baseline)
            self.study.set_user_attr("baseline_end", baseline_end.to_dict())
        records = trial_records(self.study)
        winner, reason = pick(records, self.s.target_epoch_s)
        if winner is not None:  # what `autotune train --best` trains: the pick rule's choice, target included
            self.study.set_user_attr("winner", {"trial": winner.number, "reason": reason})
        return SearchOutcome(
            study=self.s.study,
            storage=mask_url(self.s.storage),
            space=self.space,
            n_train=self.n_train,
            baseline=baseline,
            baseline_end=baseline_end,
            trials=records,
            front=front(records),
            winner=winner,
            pick_reason=reason,
            stop_reason=stop_reason,
            elapsed_s=self.clock() - self.t0,
            notes=tuple(self.notes),
            interrupted=interrupted,
            autobatch=self.s.autobatch or self.study.user_attrs.get("autobatch"),
        )


def outcome_to_dict(o: SearchOutcome) -> dict[str, Any]:
    d = asdict(o)
    d["baseline"] = o.baseline.to_dict() if o.baseline else None
    d["baseline_end"] = o.baseline_end.to_dict() if o.baseline_end else None
    d["drift"] = o.drift
    return d
