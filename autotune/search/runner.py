"""The search loop: seeds, objective, constraints, pruning and budget, over one Optuna study.

Each trial is one isolated probe. The objective is the projected epoch time (training images / measured
images/s), minimised. A trial over the memory limit, out of memory, too slow to finish, or asking for a cache
this machine cannot hold is a *completed, infeasible* trial (`trial.set_constraint`, value INFEASIBLE_S), never
a FAIL, so the sampler learns where the wall is. The probe function and the clock are injected: tests drive
the whole search with a fake probe and an in-memory study. What the study keeps is the store's business.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autotune import __version__, status
from autotune.errors import UserError
from autotune.records.config import TrainConfig, Workload
from autotune.records.machine import Machine
from autotune.records.probe import ProbeResult, ValRate, now_iso, val_seconds
from autotune.records.search import RANK_WORDS, DatasetSize, SideProbe, Space, StudyMeta
from autotune.records.status import SKIPPED
from autotune.search import levers, names, sidebyside, store
from autotune.search.ladder import next_rung
from autotune.search.names import mask_url
from autotune.search.pick import front, pick
from autotune.search.rules import (
    SlowerThanBest,
    autotune_alive,
    constraint_values,
    host_lock,
    one_time_s,
    peak_memory,
    ranked_epoch_s,
    worker_seed,
)
from autotune.search.settings import SearchOutcome, SearchSettings
from autotune.search.sidebyside import SideBySide
from autotune.search.space import MemoryModel, cache_violation, fit_memory_model, memory_violation
from autotune.search.store import StudyStore

INFEASIBLE_S = 1e9  # objective value of an infeasible trial: constraints carry the why, this keeps it last

ProbeFn = Callable[..., ProbeResult]  # (config, workload, options, on_progress) -> ProbeResult
Clock = Callable[[], float]


@dataclass
class _Run:
    """One run's progress through its phases."""

    baseline: ProbeResult | None = None
    baseline_end: ProbeResult | None = None
    side: SideBySide | None = None
    stop_reason: str = ""
    stopped: bool = False  # interrupted, or the storage failed: the remaining phases are skipped
    interrupted: bool = False

    def stop(self, reason: str, interrupted: bool = False) -> None:
        self.stop_reason, self.stopped, self.interrupted = reason, True, interrupted


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


MAX_BUDGET_PRUNES = 8  # compiled trials pruned in a row for want of time before the trials stop


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
        n_val: int = 0,
    ) -> None:
        self.s, self.space, self.workload, self.machine = settings, space, workload, machine
        self.n_val = n_val  # validation images: each trial's validation pass is projected from them
        self.rank_on = settings.rank_on  # the study's own, once it is open
        self.dataset, self.n_train, self.probe_fn, self.clock = dataset, n_train, probe_fn, clock
        self.ram_available, self.disk_free, self.lock_path = ram_available, disk_free, lock_path
        self.on_event = on_event
        self.worker = f"{machine.hostname}:{os.getpid()}"  # which worker ran a trial, in a shared study
        self.notes: list[str] = []
        self.store = self._open_study(storage)
        self.study = self.store.study
        self.t0 = clock()
        self.deadline = self.t0 + settings.budget_s
        self.durations: list[float] = []
        self.compiled_durations: list[float] = []  # compiled probes: minutes of compiling on a small CPU
        self.budget_prunes = 0  # compiled trials in a row pruned for want of time (the sampler may insist)
        self.in_trials = False  # the trials phase runs (not the baseline, factor probes or side-by-side phase)

    # -- study ----------------------------------------------------------------------------------------------------

    def meta(self) -> StudyMeta:
        return StudyMeta(
            machine=self.machine,
            machine_id=self.machine.identity_hash(),
            workload=self.workload,
            n_train=self.n_train,
            baseline=self.s.baseline,
            space=self.space,
            memory_limit_bytes=self.s.memory_limit_bytes,
            dataset=self.dataset,
            target_epoch_s=self.s.target_epoch_s,
            probe_options=self.s.probe_options,
            autotune_version=__version__,
            autobatch=self.s.autobatch,
            n_val=self.n_val,
            rank_on=self.s.rank_on,
        )

    def _open_study(self, storage: Any) -> StudyStore:
        import optuna

        st = store.create(storage, self.s.study, None, SlowerThanBest())
        first = not st.has_meta()
        if first:  # a new study: freeze what it is about
            # Two workers starting together may both write all of it; the checks below, on a fresh read, catch
            # a mismatch.
            st.write_meta(self.meta())
        # The study's first worker samples with the seed given; a worker joining it (another host, or this one
        # again) with a seed of its own, or all would propose the same first trials.
        seed = self.s.seed if first else worker_seed(self.s.seed, self.worker)
        st.study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True)
        stored = st.meta()
        if stored.machine_id != self.machine.identity_hash():
            theirs = stored.machine.summary() if stored.machine else "another machine"
            raise UserError(
                f"study {self.s.study!r} was measured on {theirs}; this machine is {self.machine.summary()}: "
                "timings are not comparable, so this worker will not join (use another --study)"
            )
        if stored.space != self.space:
            raise UserError(
                f"study {self.s.study!r} searches {stored.space.describe()}; this command asks for "
                f"{self.space.describe()}: a study's space is frozen (use --fresh or another --study)"
            )
        self.rank_on = stored.rank_on
        if stored.rank_on != self.s.rank_on:
            self.notes.append(
                f"study {self.s.study!r} ranks on {RANK_WORDS[stored.rank_on]} (frozen when it was made), not on "
                f"{RANK_WORDS[self.s.rank_on]}: use --fresh for a study that does"
            )
        orphans = st.fail_orphans(self.machine.hostname, autotune_alive)
        if orphans:
            self.notes.append(
                f"trial(s) {', '.join(map(str, orphans))} were left running by a search that died on this host: "
                "marked failed and queued again"
            )
        return st

    # -- budget ---------------------------------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def predicted_trial_s(self, compiled: bool = False) -> float:
        """A trial is predicted to take as long as the slowest one of its kind so far (probes vary with batch and
        imgsz; a compiled one also compiles, 471 s against ~30 s measured on a 2-core CPU): one slow compiled
        probe must not stop the search from running uncompiled ones."""
        same = self.compiled_durations if compiled else self.durations
        return max(same or self.durations or self.compiled_durations or [0.0])

    def end_reserve(self, capped: bool = True) -> float:
        """Kept for the side-by-side phase: the baseline and the winner, each measured `ROUNDS` times (a runner-up
        joins them only where the time left allows). Against trials at most `sidebyside.BUDGET_SHARE` of the
        budget (`capped`), so a small budget still searches and the phase measures what fits and says so; the
        factor probes (which `autotune report --measure` can run later) yield it in full."""
        if self.s.end_reserve_s is not None:
            return self.s.end_reserve_s
        b = self.store.reference()
        full = 2 * sidebyside.ROUNDS * b.duration_s if b else 0.0
        return min(full, sidebyside.BUDGET_SHARE * self.s.budget_s) if capped else full

    def lever_reserve(self) -> float:
        """Kept for the factor probes at the end: one probe per lever (4) and the optimizer's, at most
        `lever_share` of the budget. Whatever it cannot fit, `autotune report --measure` measures later."""
        if self.s.lever_share <= 0:
            return 0.0
        typical = statistics.median(self.durations) if self.durations else self.end_reserve()
        return min(self.s.lever_share * self.s.budget_s, (len(levers.LEVERS) + 1) * typical)

    def _baseline_trial_is_next(self) -> bool:
        """The seeded baseline trial waits next and will reuse the reference measurement: it costs no probe time.
        (In a shared study another worker may take it first; then one trial may run past this worker's budget.)"""
        if self.store.reference() is None or self.store.baseline_reused() or not self.space.contains(self.s.baseline):
            return False
        waiting = self.store.waiting_params()
        return bool(waiting) and waiting[0] == self.space.params(self.s.baseline)

    def budget_note(self) -> str | None:
        """Said once the baseline is measured, where the budget leaves room for too few probes to search."""
        b = self.store.reference()
        probe_s = b.duration_s if b else 0.0
        if probe_s <= 0:
            return None
        fits = max(self.time_for_trials(), 0.0) / probe_s
        if fits >= 3:
            return None
        # ~10 trials, the baseline and the side-by-side phase, with the factor probes' share of the budget on top
        enough_min = math.ceil((11 + 2 * sidebyside.ROUNDS) * probe_s / (1 - min(self.s.lever_share, 0.5)) / 60)
        return (
            f"the budget leaves room for about {int(fits)} probe(s) of ~{probe_s:.0f} s besides the baseline: too few "
            f"to search (--budget {enough_min}min or more gives ~10)"
        )

    def time_for_trials(self) -> float:
        """Seconds left for trials: the budget less what the factor probes and the side-by-side phase keep."""
        return self.remaining() - self.end_reserve() - self.lever_reserve()

    def can_start_trial(self) -> tuple[bool, str]:
        if self._baseline_trial_is_next():
            return True, ""
        left = self.time_for_trials()
        need = self.predicted_trial_s()
        if left <= 0 or left < need:
            return False, (
                f"budget: {max(left, 0):.0f} s left after the factor probes and the side-by-side phase, "
                f"a trial takes ~{need:.0f} s"
            )
        return True, ""

    # -- probes ---------------------------------------------------------------------------------------------------

    def _probe(self, config: TrainConfig, on_progress: Callable[[dict[str, Any]], Any] | None = None) -> ProbeResult:
        options = self.s.probe_options
        if options.timeout_s is None:  # never let one probe run far past the budget
            # a compiled trial also leaves the side-by-side phase its time: its duration varies with the shapes it
            # compiles (459 s, then 747 s for another batch, on a 2-core CPU), so a prediction cannot guard it
            keep = self.end_reserve() if config.compile != "off" and self.in_trials else 0.0
            options = replace(options, timeout_s=max(self.remaining() - keep, 60.0) + 60.0)
        if self.s.memory_limit_bytes is not None:
            options = replace(options, memory_limit=f"{self.s.memory_limit_bytes}B")
        with self._host_lock():
            t0 = self.clock()
            result = self.probe_fn(config, self.workload, options, on_progress)
            (self.compiled_durations if config.compile != "off" else self.durations).append(self.clock() - t0)
        return result

    def _host_lock(self) -> contextlib.AbstractContextManager[None]:
        return host_lock(self.lock_path) if self.lock_path else contextlib.nullcontext()

    def measure_baseline(self) -> ProbeResult | None:
        """A reference probe stored with the study, outside the sampler (it may lie outside the space).

        Another worker may be measuring it right now: the host lock serialises probes, and the stored value is
        looked up again once the lock is ours (workers on other hosts may still measure it twice: harmless).
        """
        stored = self.store.reference()
        if stored:
            return stored
        self.on_event("reference", {"key": "baseline", "config": self.s.baseline})
        with self._host_lock():
            stored = self.store.reference()
            if stored:
                return stored
            lock_path, self.lock_path = self.lock_path, None  # held already: _probe must not wait for itself
            try:
                result = self._probe(self.s.baseline)
            finally:
                self.lock_path = lock_path
        self.store.set_reference(result)
        self.on_event("reference_done", {"key": "baseline", "result": result})
        return result

    def enqueue_seeds(self) -> None:
        for seed in (self.s.baseline, *self.s.seeds):
            if self.space.contains(seed):
                self.study.enqueue_trial(self.space.params(seed), skip_if_exists=True)

    def climb_ladder(self) -> None:
        """Enqueue the batch ladder's next rung (the best config at a larger batch) once the queue is empty."""
        if self.s.ladder_after is None:
            return
        if self.store.waiting_params() or len(self.store.trials(("COMPLETE",))) < self.s.ladder_after:
            return
        rung = next_rung(self.store.records(), self.space, self.memory_model(), self.s.memory_limit_bytes)
        if rung is not None:
            config = TrainConfig.from_dict(rung)
            self.study.enqueue_trial(self.space.params(config), skip_if_exists=True)
            self.on_event("rung", {"config": config})

    def memory_model(self) -> MemoryModel | None:
        return fit_memory_model(self.store.memory_points())

    def skip_reason(self, config: TrainConfig, model: MemoryModel | None = None) -> tuple[str, str] | None:
        """(constraint, why) for a config known not to fit without probing it: the cache rule, the memory model."""
        why = cache_violation(self.dataset, config.cache, config.imgsz, self.ram_available, self.disk_free)
        if why:
            return "other", why
        if self.s.memory_limit_bytes is not None:
            why = memory_violation(model or self.memory_model(), config.batch, config.imgsz, self.s.memory_limit_bytes)
            if why:
                return "memory", why
        return None

    def suggest(self, trial: Any) -> TrainConfig:
        sp = self.space
        return self.s.baseline.with_(
            batch=trial.suggest_int("batch", sp.batch_low, sp.batch_high, log=sp.batch_high > sp.batch_low),
            workers=trial.suggest_int("workers", 0, sp.workers_high),
            imgsz=trial.suggest_categorical("imgsz", list(sp.imgsz)),
            cache=trial.suggest_categorical("cache", list(sp.cache)),
            source=trial.suggest_categorical("source", list(sp.source)) if len(sp.source) > 1 else sp.source[0],
            compile=trial.suggest_categorical("compile", list(sp.compile)) if len(sp.compile) > 1 else sp.compile[0],
        )

    def objective(self, trial: Any) -> float:
        import optuna

        config = self.suggest(trial)
        self.store.start_trial(trial, config, self.worker)
        self.on_event("trial", {"number": trial.number, "config": config})
        skip = self.skip_reason(config)
        if skip:
            kind, why = skip
            return self._infeasible(trial, SKIPPED, why, memory=float(kind == "memory"), other=float(kind == "other"))
        if config.compile != "off" and self.compiled_durations:
            left, need = self.time_for_trials(), self.predicted_trial_s(True)
            if left < need:  # pruned, not infeasible: with more budget it could run
                self.budget_prunes += 1
                self.on_event("pruned", {"number": trial.number, "config": config})
                raise optuna.TrialPruned(f"budget: {max(left, 0):.0f} s left, a compiled probe takes ~{need:.0f} s")

        def on_progress(beat: dict[str, Any]) -> bool:
            """Report the running projection; True asks isolate to stop the probe (pruned)."""
            self.on_event("beat", beat)
            if beat.get("phase") != "measure" or not beat.get("window_s"):
                return False
            trial.report(self.n_train / (config.batch / beat["window_s"]), int(beat.get("measured", 0)))
            return trial.should_prune()

        self.budget_prunes = 0
        result = self._reuse_baseline(config) or self._probe(config, on_progress)
        self.store.set_trial_result(trial, result, peak_memory(result))
        state = status.sampler_state(result.status)
        if state == "pruned":
            self.on_event("pruned", {"number": trial.number, "config": config})
            raise optuna.TrialPruned(result.reason)
        if state == "fail":
            self.on_event("failed", {"number": trial.number, "reason": result.reason})
            raise RuntimeError(f"probe crashed: {result.reason}")  # a FAIL: not a wall the sampler should learn
        memory, other, reason = constraint_values(result, self.s.memory_limit_bytes)
        if memory > 0 or other > 0 or result.stats is None:
            return self._infeasible(trial, result.status, reason or result.reason, memory=memory, other=other)
        self.store.set_constraints(trial, memory, 0.0)
        # one-time costs (a cache build, a resized copy) spread over the planned run's epochs
        one_time = one_time_s(result)
        val_s = val_seconds(self.n_val, ValRate.from_result(result))
        ips = result.stats.images_per_s
        compiled = result.compile_cost.one_time_s if result.compile_cost else None
        self.store.set_trial_rates(trial, ips, result.stats.sec_per_iter_median, one_time, val_s, compiled)
        value = ranked_epoch_s(self.n_train, ips, one_time, self.workload.epochs, val_s, self.rank_on)
        self.on_event("done", {"number": trial.number, "config": config, "epoch_s": value, "result": result})
        return value

    def measure_levers(self, baseline: ProbeResult, repeats: int = 1) -> int:
        """The report's factor probes for the current winner, while they fit before the baseline's repeat.

        With repeats > 1 (`autotune report --measure --repeats N`) the baseline and the winner are measured
        again too, so the end-to-end speedup gets an interval like the single factors.
        """
        completed = [r for r in self.store.records() if r.state == "COMPLETE"]
        winner, _ = pick(completed, self.s.target_epoch_s)
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
        todo = levers.still_missing(probes, self.store.snapshot(self.s.storage), repeats)
        model = self.memory_model()

        def skip_reason(c: TrainConfig) -> str | None:
            skip = self.skip_reason(c, model)
            return skip[1] if skip else None

        def can_start(c: TrainConfig) -> bool:
            # a compiled factor probe started with less time than a compile takes only times out (353 s spent
            # that way once on a 2-core CPU, leaving the side-by-side phase nothing)
            return self.remaining() - self.end_reserve(capped=False) >= self.predicted_trial_s(c.compile != "off")

        n = levers.run_lever_probes(
            todo,
            self.workload,
            lambda c: self._probe(c),
            self.store.add_lever_result,
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
        stored = self.store.reference()
        if config != self.s.baseline or stored is None or self.store.baseline_reused():
            return None
        self.store.mark_baseline_reused()
        return stored

    def _infeasible(self, trial: Any, status_: str, reason: str, memory: float = 0.0, other: float = 0.0) -> float:
        # with no memory violation, something else made it unusable: say so in the other constraint
        self.store.set_constraints(trial, max(memory, 0.0), other if other > 0 else (0.0 if memory > 0 else 1.0))
        self.store.set_trial_outcome(trial, status_, reason)
        self.on_event("infeasible", {"number": trial.number, "status": status_, "reason": reason})
        return INFEASIBLE_S

    # -- the loop -------------------------------------------------------------------------------------------------

    def run(self) -> SearchOutcome:
        """The baseline, trials while the budget allows, the factor probes, the baseline again. An interrupt (Ctrl-C,
        or SIGTERM/SIGHUP, which the CLI raises as one) or a storage that stops answering ends it at any point:
        the running probe is killed with its workers (isolate), every finished trial is kept, the outcome says why."""
        run = _Run()
        phases = (("the baseline probe", self._start), ("the trials", self._trials),
                  ("the factor probes", self._levers), ("the baseline's repeat", self._end))  # fmt: skip
        for name, phase in phases:
            if run.stopped:
                break
            try:
                phase(run)
            except KeyboardInterrupt:
                why = f"interrupted (Ctrl-C or a signal) during {name}"
                run.stop(f"{why}: every finished trial is kept; run the same command to resume", interrupted=True)
            except Exception as e:
                failure = store.storage_failure(e)
                if failure is None:
                    raise
                run.stop(
                    f"the storage stopped answering during {name} ({names.mask_text(_first(failure), self.s.storage)})"
                )
        return self.outcome(run.baseline, run.baseline_end, run.stop_reason, run.interrupted, run.side)

    def _start(self, run: _Run) -> None:
        run.baseline = self.measure_baseline()
        self.enqueue_seeds()
        note = self.budget_note()
        if note:
            self.notes.append(note)
            self.on_event("note", {"text": note})

    def _trials(self, run: _Run) -> None:
        self.in_trials = True
        try:
            self._trial_loop(run)
        finally:
            self.in_trials = False

    def _trial_loop(self, run: _Run) -> None:
        while True:
            ok, why = self.can_start_trial()
            if ok and self.budget_prunes >= MAX_BUDGET_PRUNES:
                ok, why = False, "budget: the sampler kept proposing compiled trials, which no longer fit"
            if not ok:
                run.stop_reason = why
                return
            self.climb_ladder()  # only right before a trial starts: a rung never waits in the study unrun
            self.study.optimize(self.objective, n_trials=1, catch=(RuntimeError,), gc_after_trial=False)

    def _levers(self, run: _Run) -> None:
        if run.baseline is not None and self.s.lever_share > 0:
            self.measure_levers(run.baseline)

    def _end(self, run: _Run) -> None:
        if run.baseline is None:
            return
        records = self.store.records()
        winner, _ = pick(records, self.s.target_epoch_s)
        if winner is None:  # nothing to confirm: the baseline again still says how far the machine drifted
            run.baseline_end = self._measure_baseline_again()
            return
        run.side = self.side_by_side(records, winner)
        if run.side is not None:
            base = [p for p in self.store.snapshot(self.s.storage).side_by_side if p.run == run.side.run]
            last = [p.result for p in base if p.role == sidebyside.BASELINE and p.result.stats is not None]
            if last:  # the baseline's last fresh run also measures the drift since the start
                run.baseline_end = last[-1]
                self.store.set_reference(last[-1], end=True)

    def _side_probe_s(self, config: TrainConfig) -> float:
        """How long a fresh probe of `config` is expected to take: as long as its trial (or the baseline) did."""
        same = [r.duration_s for r in self.store.records() if r.config and TrainConfig.from_dict(r.config) == config]
        b = self.store.reference()
        return max(same) if same else (b.duration_s if b else self.predicted_trial_s())

    def side_by_side(self, records: Any, winner: Any) -> SideBySide | None:
        """The winner, a runner-up within noise and the baseline, measured again, interleaved, alternating order
        (where the runner-up measures faster than the winner, outcome() makes it the winner)."""
        cands = sidebyside.candidates(self.s.baseline, records, winner)
        plan = sidebyside.schedule(cands)
        if len(cands) == 3 and sum(self._side_probe_s(c.config) for _, c in plan) > self.remaining():
            cands = cands[:2]  # no time for the runner-up: the winner and the baseline come first
            plan = sidebyside.schedule(cands)
        run_id = f"{now_iso()} {self.worker}"
        self.on_event("side_start", {"candidates": cands, "rounds": sidebyside.ROUNDS})
        done: list[SideProbe] = []
        for k, c in plan:
            need, left = self._side_probe_s(c.config), max(self.remaining(), 0.0)
            if left < 0.9 * need:
                why = "the budget ran out"
                if c.config.compile != "off":
                    why = f"a fresh compiled probe compiles again (~{need:.0f} s), {left:.0f} s left"
                self.notes.append(f"the side-by-side phase stopped after {len(done)} of {len(plan)} probes: {why}")
                break
            self.on_event("side", {"round": k, "role": c.role, "config": c.config})
            result = self._probe(c.config)
            probe = SideProbe(run_id, k, c.role, c.config, result)
            self.store.add_side_probe(probe)
            done.append(probe)
            self.on_event("side_done", {"round": k, "role": c.role, "result": result})
        start = self.store.reference()
        extra = [start.stats.images_per_s] if start and start.stats else []
        return sidebyside.summarize(done, extra)

    def _measure_baseline_again(self) -> ProbeResult | None:
        """With no winner to confirm, the baseline once more: how far the machine drifted meanwhile."""
        if self.remaining() < 0.9 * (self.store.reference().duration_s if self.store.reference() else 0.0):
            self.notes.append("no time was left to measure the baseline again: drift not measured this run")
            return None
        self.on_event("reference", {"key": "baseline_end", "config": self.s.baseline})
        result = self._probe(self.s.baseline)
        self.store.set_reference(result, end=True)
        return result

    def outcome(
        self,
        baseline: ProbeResult | None,
        baseline_end: ProbeResult | None,
        stop_reason: str,
        interrupted: bool,
        side: SideBySide | None = None,
    ) -> SearchOutcome:
        try:
            records = self.store.records()
            winner, reason = pick(records, self.s.target_epoch_s)
            if winner is not None and side is not None and side.faster == sidebyside.RUNNER_UP:
                winner, reason = sidebyside.promote_runner_up(records, winner, side)
            if winner is not None:  # what `autotune train --best` trains: the pick rule's choice, target included
                self.store.set_winner(winner.number, reason)
            autobatch = self.s.autobatch or self.store.meta().autobatch
        except Exception as e:  # nothing more can be read or kept: say so, lose nothing else
            failure = store.storage_failure(e)
            if failure is None:
                raise
            records, winner, reason, autobatch = (), None, "the storage did not answer", self.s.autobatch
            self.notes.append(f"the trials could not be read back: {names.mask_text(_first(failure), self.s.storage)}")
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
            autobatch=autobatch,
            side_by_side=side,
            rank_on=self.rank_on,
            epochs=self.workload.epochs,
        )
