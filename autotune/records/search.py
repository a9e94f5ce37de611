"""A search study as plain data: its space, what it was made for, its trials, and a snapshot of all of it.

The study store (search/store.py) is the only code that reads these from or writes them to the storage; everything
else (the report, training, the terminal) works on these types.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.machine import Machine
from autotune.records.probe import ProbeResult
from autotune.records.run import TrainRun


@dataclass(frozen=True)
class Space:
    """The searched levers. Frozen into a study when it is created (Optuna 5 refuses changing categorical choices)."""

    batch_low: int
    batch_high: int  # batch is an integer distribution (log scale), so any seed batch inside fits
    workers_high: int  # workers 0..workers_high
    imgsz: tuple[int, ...]  # categorical
    cache: tuple[str, ...]  # categorical
    source: tuple[str, ...] = ("original",)  # categorical; ("original", "resized") where resizing can matter
    compile: tuple[str, ...] = ("off",)  # categorical; torch.compile modes (COMPILE_MODES) asked with --compile

    def contains(self, c: TrainConfig) -> bool:
        return (
            self.batch_low <= c.batch <= self.batch_high
            and 0 <= c.workers <= self.workers_high
            and c.imgsz in self.imgsz
            and c.cache in self.cache
            and c.source in self.source
            and c.compile in self.compile
        )

    def params(self, c: TrainConfig) -> dict[str, Any]:
        """The sampler's parameters of a config (what a trial enqueued for it holds)."""
        p: dict[str, Any] = {"batch": c.batch, "workers": c.workers, "imgsz": c.imgsz, "cache": c.cache}
        if len(self.source) > 1:
            p["source"] = c.source
        if len(self.compile) > 1:
            p["compile"] = c.compile
        return p

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.source == ("original",):  # as before the source lever: older studies keep their names
            del d["source"]
        if self.compile == ("off",):  # likewise for the compile lever
            del d["compile"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Space:
        return cls(
            batch_low=int(d["batch_low"]),
            batch_high=int(d["batch_high"]),
            workers_high=int(d["workers_high"]),
            imgsz=tuple(int(x) for x in d["imgsz"]),
            cache=tuple(str(x) for x in d["cache"]),
            source=tuple(str(x) for x in d.get("source", ("original",))),
            compile=tuple(str(x) for x in d.get("compile", ("off",))),
        )

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]

    def describe(self) -> str:
        return (
            f"batch {self.batch_low}-{self.batch_high}, workers 0-{self.workers_high}, "
            f"imgsz {','.join(map(str, self.imgsz))}, cache {','.join(self.cache)}"
            + (f", source {','.join(self.source)}" if len(self.source) > 1 else "")
            + (f", compile {','.join(self.compile)}" if self.compile != ("off",) else "")
        )


@dataclass(frozen=True)
class DatasetSize:
    """What the cache rules need to know about the whole dataset."""

    n_images: int  # train + val
    mean_pixels: float  # mean width x height of the stored images
    mean_aspect: float  # mean short/long side ratio (the RAM cache resizes the long side to imgsz)

    @property
    def mean_long_side(self) -> float:
        """Pixels along the long side: width x height = long^2 x aspect."""
        return (self.mean_pixels / max(self.mean_aspect, 1e-6)) ** 0.5


# What a search ranks configurations on (frozen with the study): the projected epoch (training + one validation
# pass, Ultralytics validates every epoch), or training alone.
RANK_EPOCH, RANK_TRAIN = "epoch", "train"
RANK_ON = (RANK_EPOCH, RANK_TRAIN)
RANK_WORDS = {RANK_EPOCH: "training + validation per epoch", RANK_TRAIN: "training alone"}


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
    memory_wall: bool = False  # it failed on memory (out of memory, over the limit, or predicted over it)
    val_s: float | None = None  # one validation pass of the full validation set, projected; None: not measured
    one_time_s: float | None = None  # paid once per run (cache build, resized copy, compile), spread in epoch_s
    compile_s: float | None = None  # torch.compile's part of it (compile on only)


@dataclass(frozen=True)
class StudyMeta:
    """What a study is about, frozen when it is created."""

    machine: Machine | None
    machine_id: str | None  # Machine.identity_hash(): workers on other hardware may not join
    workload: Workload
    n_train: int
    baseline: TrainConfig  # Ultralytics' defaults unless given; may lie outside the space
    space: Space
    memory_limit_bytes: int | None = None  # GPU memory on CUDA, RAM on CPU
    dataset: DatasetSize | None = None  # images (train + val), mean size: the cache rules and the report
    target_epoch_s: float | None = None
    probe_options: ProbeOptions | None = None  # `report --measure` and `train` probe as the search did
    autotune_version: str = ""
    autobatch: dict[str, Any] | None = None  # AutoBatch's answer on a GPU: imgsz, fraction, batch or error
    n_val: int = 0  # validation images: a validation pass is projected from them
    rank_on: str = "train"  # RANK_EPOCH or RANK_TRAIN; a study made before validation was ranked: "train"


@dataclass(frozen=True)
class SideProbe:
    """One fresh measurement of the side-by-side phase at the end of a search (search/sidebyside.py)."""

    run: str  # the search run that made it (when that run's side-by-side phase started, ISO time)
    round: int  # 0-based; the order alternates from one round to the next
    role: str  # baseline | winner | runner-up
    config: TrainConfig
    result: ProbeResult


@dataclass(frozen=True)
class StudySnapshot:
    """A whole study read from the storage, as plain data: enough to rebuild a report from storage alone."""

    name: str
    storage: str  # the URL, password hidden
    meta: StudyMeta
    trials: tuple[TrialRecord, ...]  # every trial that started, in order
    results: dict[int, ProbeResult]  # trial number -> its probe's result (COMPLETE trials that probed)
    baseline: ProbeResult | None  # the reference probe at the start of the search
    baseline_end: ProbeResult | None  # and again at its end (machine drift)
    lever_results: dict[TrainConfig, tuple[ProbeResult, ...]] = field(default_factory=dict)  # factor probes
    winner: int | None = None  # the trial the search picked (or the pick rule's choice, for older studies)
    winner_reason: str = ""
    train_runs: tuple[TrainRun, ...] = ()  # `autotune train` runs, oldest first
    side_by_side: tuple[SideProbe, ...] = ()  # every run's side-by-side probes, in the order they ran

    def trial(self, number: int) -> TrialRecord | None:
        return next((t for t in self.trials if t.number == number), None)
