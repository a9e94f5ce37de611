"""The report's data: everything a table, a chart or a sentence of the report shows, as plain values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from autotune.report.factors import WaterfallStep


@dataclass(frozen=True)
class TrialPoint:
    """One trial as the charts see it."""

    number: int
    batch: int
    workers: int
    imgsz: int
    cache: str
    feasible: bool
    status: str
    images_per_s: float | None
    peak_memory_bytes: int | None
    source: str = "original"


@dataclass(frozen=True)
class FactorRow:
    lever: str
    before: str
    after: str
    claim: str  # the story's claim, as it states it
    naive: float | None  # the story's rule for this change, on the user's numbers
    measured: float | None
    low: float | None
    high: float | None
    n: int  # measurements of the lever's config
    state: str  # measured | not measurable alone | not measured yet | failed
    note: str = ""
    interval: str = "repeats"  # where low/high come from: repeats on both sides, or "noise floor +-N%" (n=1)

    @property
    def indistinguishable_from_one(self) -> bool:
        return self.low is not None and self.high is not None and self.low <= 1.0 <= self.high


@dataclass(frozen=True)
class Side:
    """The baseline or the winner: config and what was measured of it."""

    config: dict[str, Any]
    images_per_s: tuple[float, ...]
    stall_fraction: float | None
    gpu_util: float | None
    epoch_train_s: float | None  # projected from the mean rate
    epoch_val_s: float | None  # val set / (2 x batch) batches at the measured val-batch time
    cache_build_s: float  # one-time, whole dataset (0 without a cache)
    resize_s: float  # one-time: the copy pre-resized to imgsz (0 from the original files)
    optimizer: str | None
    step_s: float | None  # one optimizer step
    accumulate: int | None
    compile_s: float = 0.0  # one-time: torch.compile's, once per run (0 uncompiled)
    val_batch: int | None = None  # the batch its validation pass was measured at (Ultralytics' 2x batch)


@dataclass(frozen=True)
class StoryCheck:
    claim: str
    verdict: str


@dataclass(frozen=True)
class ValEvery:
    every: int
    passes: int  # in the run, the final validation of best.pt included
    val_s: float  # all of them
    saved_s: float  # against validating every epoch


@dataclass(frozen=True)
class ValidationSummary:
    batch: int | None  # the validation batch measured (Ultralytics' 2x the training batch)
    pass_s: float  # one warm pass over the validation set
    train_epoch_s: float | None
    epochs: int
    options: tuple[ValEvery, ...]

    @property
    def share(self) -> float | None:
        """Validation's share of an epoch that validates."""
        if not self.train_epoch_s:
            return None
        return self.pass_s / (self.pass_s + self.train_epoch_s)


@dataclass(frozen=True)
class CompileSummary:
    """torch.compile against the same settings uncompiled: the one-time cost, the per-epoch gain, the break-even.
    Seconds; epochs are training only (validation runs the EMA model, which Ultralytics does not compile)."""

    mode: str
    config: str  # the compiled configuration's label
    compile_s: float  # once per session: the first iterations' compile and the short last batch's recompile
    epoch_on_s: float  # training seconds per epoch, compiled
    epoch_off_s: float  # the same, uncompiled
    planned_epochs: int
    paired: bool  # True: the same settings measured compiled and not; False: the best trial of each
    on_trial: int
    off_trial: int

    @property
    def gain(self) -> float:
        """Per-epoch (per-iteration) speedup of compiling, one-time cost left out."""
        return self.epoch_off_s / self.epoch_on_s

    @property
    def break_even_epochs(self) -> float | None:
        """Planned epochs from which compiling pays off: its one-time cost over what it saves per epoch; None
        where it saves nothing per epoch (it never pays off)."""
        saved = self.epoch_off_s - self.epoch_on_s
        return self.compile_s / saved if saved > 0 else None

    @property
    def pays_off(self) -> bool:
        be = self.break_even_epochs
        return be is not None and be < self.planned_epochs


@dataclass(frozen=True)
class ReportData:
    study: str
    storage: str
    created: str
    machine: str
    workload: dict[str, Any]
    space: str
    memory_limit_bytes: int | None
    epochs: int
    baseline: Side
    winner: Side
    factors: tuple[FactorRow, ...]
    naive_product: float | None
    measured_product: float | None
    measured_product_interval: tuple[float, float] | None  # propagated in log space from the factors' intervals
    end_to_end: float
    end_to_end_low: float
    end_to_end_high: float
    end_to_end_source: str  # which measurements the headline comes from
    noise_floor: float  # the interval a side measured once gets: max(baseline drift, 10%)
    interaction: float | None
    interaction_interval: tuple[float, float] | None
    interaction_text: str
    same_imgsz: bool
    waterfall: tuple[WaterfallStep, ...]
    total_baseline_s: float
    total_winner_s: float
    story: tuple[StoryCheck, ...]  # the story's claims answered with this study's numbers
    recipe: tuple[StoryCheck, ...]
    points: tuple[TrialPoint, ...]
    front: tuple[TrialPoint, ...]
    missing: tuple[str, ...]  # levers still to measure (autotune report --measure)
    notes: tuple[str, ...] = ()
    train_runs: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    compile: tuple[CompileSummary, ...] = ()  # one per compile mode the study measured
    validation: ValidationSummary | None = None  # the winner's validation pass and what --val-every saves

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["compile"] = [compile_dict(c) for c in self.compile]
        if self.validation is not None:
            d["validation"]["share"] = self.validation.share
        return d


def compile_dict(c: CompileSummary) -> dict[str, Any]:
    return {**asdict(c), "gain": c.gain, "break_even_epochs": c.break_even_epochs, "pays_off": c.pays_off}
