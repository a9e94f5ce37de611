"""The study store: the only code that knows the Optuna storage and the names of what a study keeps in it.

A study's attributes (what it is about, its reference probes, factor probes, phase probes, training runs) and its
trials' attributes (config, probe result, status) are Optuna user attributes; their names are private to this
module. Everything else reads and writes plain records (records/search.py) through `StudyStore`, or reads a whole
study at once as a `StudySnapshot`: a report can be rebuilt from storage alone.

The storage format is what autotune has always written: a study made by an older version stays readable.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from autotune import __version__
from autotune.errors import UserError
from autotune.files import cache_root
from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.machine import Machine
from autotune.records.probe import ProbeResult
from autotune.records.run import TrainRun
from autotune.records.search import (
    RANK_TRAIN,
    DatasetSize,
    SideProbe,
    Space,
    StudyMeta,
    StudySnapshot,
    TrialRecord,
)
from autotune.search.names import mask_text, mask_url
from autotune.status import MEMORY_WALL

HEARTBEAT_S = 60  # Optuna's heartbeat: a trial RUNNING with no beat for 2 intervals is failed
DB_NAME = "studies.db"

# Study attributes. "space" is written last: a worker that sees it sees everything else of the study's meta.
_MACHINE, _MACHINE_ID, _WORKLOAD, _BASELINE_CONFIG = "machine", "machine_id", "workload", "baseline_config"
_LIMIT, _DATASET, _TARGET, _OPTIONS = "memory_limit_bytes", "dataset", "target_epoch_s", "probe_options"
_VERSION, _AUTOBATCH, _RANK_ON, _SPACE = "autotune_version", "autobatch", "rank_on", "space"
_BASELINE, _BASELINE_END, _BASELINE_REUSED, _WINNER = "baseline", "baseline_end", "baseline_reused", "winner"
_LEVER_PREFIX, _PHASE_PREFIX, _RUN_PREFIX, _SIDE_PREFIX = "probe:", "phase:", "train_run:", "side:"
# Trial attributes.
_CONFIG, _WORKER, _RESULT, _STATUS, _REASON = "config", "worker", "result", "status", "reason"
_DURATION, _PEAK, _IPS, _SPI, _ONE_TIME, _VAL, _COMPILE = (
    "duration_s",
    "peak_memory_bytes",
    "images_per_s",
    "sec_per_iter",
    "one_time_s",
    "val_s",
    "compile_s",
)
_MEMORY_CONSTRAINT = "memory"


# -- where studies are ---------------------------------------------------------------------------------------


def default_url() -> str:
    """The embedded SQLite file every command uses unless told otherwise."""
    return f"sqlite:///{cache_root() / DB_NAME}"


# -- opening ------------------------------------------------------------------------------------------------------


def _sqlite_file(url: str) -> Path | None:
    m = re.match(r"^sqlite:///(.+)$", url)
    return Path(m.group(1)) if m and m.group(1) != ":memory:" else None


def open_storage(url: str | None, create: bool = True) -> Any:
    """An Optuna RDB storage with heartbeats, or a UserError naming the (masked) URL.

    create=False (report, train): a study must already exist, so an SQLite file that is not there is "no study
    yet", and no empty file is left behind.
    """
    url = url or default_url()
    if not re.match(r"^(sqlite|postgresql(\+\w+)?|mysql(\+\w+)?)://", url):
        raise UserError(f"storage URL {mask_url(url)!r} is not an Optuna RDB URL (sqlite:///file.db, postgresql://...)")
    path = _sqlite_file(url)
    if path is not None:
        if not create and not path.is_file():
            where = "" if url == default_url() else f" in storage {mask_url(url)}"
            raise UserError(f"no study yet{where}: run `autotune search` first")
        if create:
            if url == default_url():
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.parent.is_dir():
                raise UserError(f"cannot open storage {url}: folder {path.parent} does not exist")
    return _rdb(url)


def open_existing(url: str | None) -> Any | None:
    """The storage if a study could be in it (an SQLite file that exists, or a server), else None; never creates."""
    path = _sqlite_file(url or default_url())
    if path is not None and not path.is_file():
        return None
    return open_storage(url, create=False)


def _rdb(url: str) -> Any:
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

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
                    # a trial whose worker died is measured again, once, by whichever worker comes next
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                )
        except ImportError as e:  # no driver: retrying will not help
            last = e
            break
        except Exception as e:  # driver errors vary by database; all end as one masked line
            # two workers starting on an empty database race to create Optuna's tables: the loser retries
            last = e
            time.sleep(1.0 + attempt)
    text = str(last).strip().splitlines()[0] if last is not None and str(last).strip() else type(last).__name__
    raise UserError(f"cannot open storage {mask_url(url)}: {mask_text(text, url)}")


def optuna_update_error() -> type[BaseException]:
    import optuna

    return optuna.exceptions.UpdateFinishedTrialError


def storage_errors() -> tuple[type[BaseException], ...]:
    """What a storage that stops answering raises (a server gone, a database locked, a disk full)."""
    import optuna
    import sqlalchemy.exc

    return (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)


def storage_failure(e: BaseException) -> BaseException | None:
    """The storage error behind `e`, if any: Optuna can raise an error of its own while handling one (its tell()
    reads the trial back from the storage that just failed), so the chain of causes is searched."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, storage_errors()):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def study_names(storage: Any, autotune_only: bool = True) -> list[str]:
    """Names of the studies in the storage, oldest first (those made by `autotune search` only, by default)."""
    import datetime as dt

    import optuna

    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    if autotune_only:
        summaries = [s for s in summaries if _WORKLOAD in s.user_attrs]
    summaries.sort(key=lambda s: s.datetime_start or dt.datetime.min)
    return [s.study_name for s in summaries]


def latest_study_name(storage: Any) -> str:
    """The most recently started autotune study in the storage, or a UserError saying how to make one."""
    import optuna

    summaries = [
        s for s in optuna.get_all_study_summaries(storage, include_best_trial=False) if _WORKLOAD in s.user_attrs
    ]
    started = [s for s in summaries if s.datetime_start is not None]
    if not started:
        raise UserError("no autotune study in the storage yet: run `autotune search` first")
    return max(started, key=lambda s: s.datetime_start).study_name


def load(storage: Any, name: str, where: str = "the storage") -> StudyStore:
    """An existing study, or a UserError naming the studies that are there."""
    import optuna

    try:
        return StudyStore(optuna.load_study(study_name=name, storage=storage))
    except KeyError:
        names = study_names(storage, autotune_only=False)
        hint = f"; studies here: {', '.join(names[-5:])}" if names else ""
        raise UserError(f"no study named {name!r} in {where}{hint}: run `autotune search` first") from None


def create(storage: Any, name: str, sampler: Any, pruner: Any) -> StudyStore:
    """The study `name`, made if it does not exist (a worker joining a shared study finds it)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # autotune reports failures and Ctrl-C in its own words
    study = optuna.create_study(
        study_name=name, storage=storage, direction="minimize", sampler=sampler, pruner=pruner, load_if_exists=True
    )
    return StudyStore(study)


# -- trials -------------------------------------------------------------------------------------------------------


def feasible(t: Any) -> bool:
    """The one definition: a finished trial with a value that violates no constraint (the search sets a value and
    zero constraints only once a probe measured a rate)."""
    from optuna.trial import TrialState

    return (
        t.state == TrialState.COMPLETE and t.value is not None and all(v <= 0 for v in (t.constraints or {}).values())
    )


def record_of(t: Any) -> TrialRecord:
    """A trial as a record (its plain parts; the probe result is read apart)."""
    ua = t.user_attrs
    ok = feasible(t)
    memory_wall = (t.constraints or {}).get(_MEMORY_CONSTRAINT, 0.0) > 0 or ua.get(_STATUS) in MEMORY_WALL
    return TrialRecord(
        number=t.number,
        state=t.state.name,
        config=ua.get(_CONFIG, {}),
        epoch_s=t.value if ok else None,
        images_per_s=ua.get(_IPS),
        sec_per_iter=ua.get(_SPI),
        feasible=ok,
        status=ua.get(_STATUS, t.state.name.lower()),
        reason=ua.get(_REASON, ""),
        duration_s=float(ua.get(_DURATION, 0.0)),
        peak_memory_bytes=ua.get(_PEAK),
        memory_wall=memory_wall,
        val_s=ua.get(_VAL),
        one_time_s=ua.get(_ONE_TIME),
        compile_s=ua.get(_COMPILE),
    )


def best_feasible_value(trials: Iterable[Any]) -> float | None:
    values = [t.value for t in trials if feasible(t)]
    return min(values) if values else None


def lever_key(config: TrainConfig) -> str:
    """The study attribute holding the factor probes of one configuration."""
    blob = json.dumps(config.to_dict(), sort_keys=True).encode()
    return _LEVER_PREFIX + hashlib.sha256(blob).hexdigest()[:12]


class StudyStore:
    """One study: what it is about, its references, trials, factor and phase probes, and training runs."""

    def __init__(self, study: Any) -> None:
        self.study = study  # the Optuna study: the search samples and optimises with it

    @property
    def name(self) -> str:
        return str(self.study.study_name)

    def _attrs(self) -> dict[str, Any]:
        return dict(self.study.user_attrs)  # read fresh: other workers write the same study

    def _set(self, key: str, value: Any) -> None:
        self.study.set_user_attr(key, value)

    # -- what the study is about ------------------------------------------------------------------------------

    def has_meta(self) -> bool:
        return _SPACE in self._attrs()

    def is_autotune(self) -> bool:
        return _WORKLOAD in self._attrs()

    def write_meta(self, m: StudyMeta) -> None:
        """Freeze what a new study is about; "space" goes last (see _SPACE)."""
        if m.machine is not None:
            self._set(_MACHINE, m.machine.to_dict())
        self._set(_MACHINE_ID, m.machine_id)
        self._set(_WORKLOAD, {**m.workload.to_dict(), "n_train": m.n_train, "n_val": m.n_val})
        self._set(_RANK_ON, m.rank_on)
        self._set(_BASELINE_CONFIG, m.baseline.to_dict())
        self._set(_LIMIT, m.memory_limit_bytes)
        if m.dataset is not None:
            self._set(_DATASET, {"n_images": m.dataset.n_images, "mean_pixels": m.dataset.mean_pixels,
                                 "mean_aspect": m.dataset.mean_aspect})  # fmt: skip
        self._set(_TARGET, m.target_epoch_s)
        if m.probe_options is not None:
            self._set(_OPTIONS, m.probe_options.to_dict())
        self._set(_VERSION, m.autotune_version or __version__)
        if m.autobatch:
            self._set(_AUTOBATCH, m.autobatch)
        self._set(_SPACE, m.space.to_dict())

    def meta(self) -> StudyMeta:
        return _meta(self._attrs(), self.name)

    # -- reference probes (outside the sampler) ---------------------------------------------------------------

    def reference(self, end: bool = False) -> ProbeResult | None:
        """The baseline measured at the start of the search (or, end=True, again at its end)."""
        d = self._attrs().get(_BASELINE_END if end else _BASELINE)
        return ProbeResult.from_dict(d) if d else None

    def set_reference(self, result: ProbeResult, end: bool = False) -> None:
        self._set(_BASELINE_END if end else _BASELINE, result.to_dict())

    def baseline_reused(self) -> bool:
        """Whether the seeded baseline trial already took the reference measurement (it is paid for once)."""
        return bool(self._attrs().get(_BASELINE_REUSED))

    def mark_baseline_reused(self) -> None:
        self._set(_BASELINE_REUSED, True)

    def set_winner(self, number: int, reason: str) -> None:
        """What `autotune train --best` trains and the report compares: the pick rule's choice, target included."""
        self._set(_WINNER, {"trial": number, "reason": reason})

    # -- trials -----------------------------------------------------------------------------------------------

    def trials(self, states: tuple[str, ...] | None = None) -> list[Any]:
        from optuna.trial import TrialState

        wanted = tuple(TrialState[s] for s in states) if states else None
        return list(self.study.get_trials(deepcopy=False, states=wanted))

    def records(self) -> tuple[TrialRecord, ...]:
        """Every trial that has started, as records."""
        return tuple(record_of(t) for t in self.trials() if t.state.name != "WAITING")

    def trial_results(self) -> list[ProbeResult]:
        """The probe results of the finished trials that probed."""
        return [
            ProbeResult.from_dict(t.user_attrs[_RESULT]) for t in self.trials(("COMPLETE",)) if _RESULT in t.user_attrs
        ]

    def best_feasible_value(self) -> float | None:
        return best_feasible_value(self.trials())

    def feasible_trials(self) -> list[Any]:
        """Optuna's own trial objects of the feasible trials: for Optuna's plots (history, importances)."""
        return [t for t in self.trials() if feasible(t)]

    def memory_points(self) -> list[tuple[int, int, int]]:
        """(batch, imgsz, peak bytes) of the feasible trials: what the memory model is fitted on."""
        out = []
        for t in self.trials():
            ua = t.user_attrs
            if feasible(t) and ua.get(_PEAK) and ua.get(_CONFIG):
                out.append((int(ua[_CONFIG]["batch"]), int(ua[_CONFIG]["imgsz"]), int(ua[_PEAK])))
        return out

    def waiting_params(self) -> list[dict[str, Any]]:
        """The parameters of the trials enqueued and not yet started, in order."""
        return [t.system_attrs.get("fixed_params", {}) for t in self.trials(("WAITING",))]

    def fail_orphans(self, host: str, alive: Callable[[int], bool]) -> list[int]:
        """Trials left RUNNING by a worker on this host that is dead (killed with SIGKILL, say): failed now and
        queued again once, instead of after the heartbeat's grace period. Returns their numbers."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback
        from optuna.trial import TrialState

        failed = []
        for t in self.trials(("RUNNING",)):
            worker_host, _, pid = str(t.user_attrs.get(_WORKER, "")).rpartition(":")
            if worker_host != host or not pid.isdigit() or alive(int(pid)):
                continue
            try:
                if self.study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    failed.append(t.number)
                    with warnings.catch_warnings():  # "experimental" in Optuna 5; it is what the heartbeat uses
                        warnings.simplefilter("ignore")
                        RetryHeartbeatStaleTrialCallback(max_retry=1)(self.study, t)
            except optuna_update_error():  # another worker failed it first
                continue
        return failed

    def start_trial(self, trial: Any, config: TrainConfig, worker: str) -> None:
        trial.set_user_attr(_CONFIG, config.to_dict())
        trial.set_user_attr(_WORKER, worker)

    def set_trial_result(self, trial: Any, result: ProbeResult, peak_memory: int | None) -> None:
        trial.set_user_attr(_RESULT, result.to_dict())
        trial.set_user_attr(_STATUS, result.status)
        trial.set_user_attr(_REASON, result.reason)
        trial.set_user_attr(_DURATION, result.duration_s)
        trial.set_user_attr(_PEAK, peak_memory)

    def set_trial_outcome(self, trial: Any, status: str, reason: str) -> None:
        trial.set_user_attr(_STATUS, status)
        trial.set_user_attr(_REASON, reason)

    def set_trial_rates(
        self,
        trial: Any,
        images_per_s: float,
        sec_per_iter: float,
        one_time_s: float,
        val_s: float | None = None,
        compile_s: float | None = None,
    ) -> None:
        trial.set_user_attr(_IPS, images_per_s)
        trial.set_user_attr(_SPI, sec_per_iter)
        trial.set_user_attr(_ONE_TIME, one_time_s)
        if val_s is not None:
            trial.set_user_attr(_VAL, val_s)
        if compile_s is not None:
            trial.set_user_attr(_COMPILE, compile_s)

    def set_constraints(self, trial: Any, memory: float, other: float) -> None:
        trial.set_constraint(_MEMORY_CONSTRAINT, memory)
        trial.set_constraint("other", other)

    # -- factor probes ----------------------------------------------------------------------------------------

    def add_lever_result(self, config: TrainConfig, lever: str, result: ProbeResult) -> None:
        """Keep one more factor probe of `config` (measured for `lever`)."""
        key = lever_key(config)
        entry = self._attrs().get(key) or {"config": config.to_dict(), "levers": [], "results": []}
        levers = sorted({*entry.get("levers", []), lever})
        self._set(key, {**entry, "levers": levers, "results": [*entry.get("results", []), result.to_dict()]})

    # -- side-by-side probes (the end of a search) ------------------------------------------------------------

    def add_side_probe(self, p: SideProbe) -> None:
        """Keep one side-by-side measurement (one attribute each: a run's probes are written as they finish)."""
        key = f"{_SIDE_PREFIX}{p.run}:{p.round}:{p.role}"
        self._set(key, {"run": p.run, "round": p.round, "role": p.role, "config": p.config.to_dict(),
                        "result": p.result.to_dict()})  # fmt: skip

    # -- phase probes (autotune train) ------------------------------------------------------------------------

    def phase(self, kind: str, key: str) -> ProbeResult | None:
        d = self._attrs().get(f"{_PHASE_PREFIX}{kind}:{key}")
        return ProbeResult.from_dict(d) if d else None

    def set_phase(self, kind: str, key: str, result: ProbeResult) -> None:
        self._set(f"{_PHASE_PREFIX}{kind}:{key}", result.to_dict())

    # -- training runs ----------------------------------------------------------------------------------------

    def train_runs(self) -> list[TrainRun]:
        """Every training run recorded in the study, oldest first."""
        return _runs(self._attrs())

    def put_train_run(self, run: TrainRun) -> None:
        self._set(_RUN_PREFIX + run.id, run.to_dict())

    # -- everything at once -----------------------------------------------------------------------------------

    def winner_number(self) -> tuple[int | None, str]:
        """The trial the search picked; for a study from before that was stored, the pick rule's choice now."""
        from autotune.search.pick import pick

        picked = self._attrs().get(_WINNER)
        numbers = {t.number for t in self.trials()}
        if picked and picked.get("trial") in numbers:
            return int(picked["trial"]), str(picked.get("reason", ""))
        target = self._attrs().get(_TARGET)
        winner, reason = pick(self.records(), target)
        return (winner.number if winner else None), reason

    def snapshot(self, storage_url: str) -> StudySnapshot:
        """The whole study as plain data (the URL is kept masked)."""
        ua = self._attrs()
        trials = [t for t in self.trials() if t.state.name != "WAITING"]
        levers: dict[TrainConfig, tuple[ProbeResult, ...]] = {}
        for key, entry in ua.items():
            if key.startswith(_LEVER_PREFIX) and isinstance(entry, dict) and entry.get("config"):
                levers[TrainConfig.from_dict(entry["config"])] = tuple(
                    ProbeResult.from_dict(r) for r in entry.get("results", [])
                )
        winner, reason = self.winner_number()
        refs = {k: ProbeResult.from_dict(ua[k]) if ua.get(k) else None for k in (_BASELINE, _BASELINE_END)}
        side = sorted(
            (
                SideProbe(
                    e["run"],
                    int(e["round"]),
                    e["role"],
                    TrainConfig.from_dict(e["config"]),
                    ProbeResult.from_dict(e["result"]),
                )
                for k, e in ua.items()
                if k.startswith(_SIDE_PREFIX) and isinstance(e, dict) and e.get("config") and e.get("result")
            ),
            key=lambda p: (p.run, p.round, p.result.created),
        )
        return StudySnapshot(
            name=self.name,
            storage=mask_url(storage_url),
            meta=_meta(ua, self.name),
            trials=tuple(record_of(t) for t in trials),
            results={
                t.number: ProbeResult.from_dict(t.user_attrs[_RESULT])
                for t in trials
                if t.state.name == "COMPLETE" and _RESULT in t.user_attrs
            },
            baseline=refs[_BASELINE],
            baseline_end=refs[_BASELINE_END],
            lever_results=levers,
            winner=winner,
            winner_reason=reason,
            train_runs=tuple(_runs(ua)),
            side_by_side=tuple(side),
        )


def _runs(ua: dict[str, Any]) -> list[TrainRun]:
    runs = [TrainRun.from_dict(v) for k, v in ua.items() if k.startswith(_RUN_PREFIX)]
    return sorted(runs, key=lambda r: (r.sessions[0].started if r.sessions else "", r.id))


def _meta(ua: dict[str, Any], name: str) -> StudyMeta:
    """What a study is about, from its attributes; a UserError for a study `autotune search` did not make."""
    if _WORKLOAD not in ua or _BASELINE_CONFIG not in ua or _SPACE not in ua:
        raise UserError(f"study {name!r} was not made by `autotune search`")
    wl = ua[_WORKLOAD]
    return StudyMeta(
        machine=Machine.from_dict(ua[_MACHINE]) if isinstance(ua.get(_MACHINE), dict) else None,
        machine_id=ua.get(_MACHINE_ID),
        workload=Workload.from_dict(wl),
        n_train=int(wl.get("n_train") or 0),
        n_val=int(wl.get("n_val") or 0),
        rank_on=str(ua.get(_RANK_ON, RANK_TRAIN)),  # older studies ranked on training alone
        baseline=TrainConfig.from_dict(ua[_BASELINE_CONFIG]),
        space=Space.from_dict(ua[_SPACE]),
        memory_limit_bytes=ua.get(_LIMIT),
        dataset=DatasetSize(**ua[_DATASET]) if ua.get(_DATASET) else None,
        target_epoch_s=ua.get(_TARGET),
        probe_options=ProbeOptions.from_dict(ua[_OPTIONS]) if ua.get(_OPTIONS) else None,
        autotune_version=str(ua.get(_VERSION, "")),
        autobatch=ua.get(_AUTOBATCH),
    )
