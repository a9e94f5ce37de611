"""What one probe measured, as plain data: iteration statistics, memory, one-time costs, file state, and the result
that carries them with its request, effective settings and context. Imports nothing that measures."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from autotune import __version__
from autotune.records.config import TrainConfig, Workload


@dataclass(frozen=True)
class IterStats:
    """Summary of one measured window. Times are seconds per iteration; rates are images per second."""

    n: int  # measured iterations
    batch: int
    accumulate: int
    sec_per_iter_median: float  # per-iteration cost with the optimizer step spread over its period
    sec_per_iter_q1: float
    sec_per_iter_q3: float
    sec_per_iter_mean: float
    images_per_s: float  # batch / mean sec per iter: the rate an epoch actually runs at
    data_wait_mean_s: float
    compute_mean_s: float  # forward + backward, without the optimizer step
    step_s: float  # median optimizer step (unscale, clip, step, zero_grad, EMA update)
    step_share_s: float  # step_s / accumulate: the step's cost per iteration
    stall_fraction: float  # share of the window spent waiting for the data loader
    # Results stored before the loader-queue window (issue 14) lack these: they load with the defaults.
    images: int = 0  # images in the window, counted per batch (0: not recorded)
    window_s: float = 0.0  # seconds the window lasted (iterations with their step share)
    mean_rel_se: float | None = None  # standard error of the mean iteration time / the mean (block means)
    queue_start: int | None = None  # loader batches ready when the window opened (None: unknown, or no workers)
    queue_end: int | None = None
    produced: int | None = None  # batches the loader finished in the window (consumed - queue_start + queue_end)

    @property
    def iqr_rel(self) -> float:
        """Interquartile range relative to the median: the spread of the iteration times."""
        return (self.sec_per_iter_q3 - self.sec_per_iter_q1) / self.sec_per_iter_median

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IterStats:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class MemoryUse:
    peak_host_bytes: int  # main process + loader workers, PSS (shared pages counted once)
    host_kind: str  # "pss", or "rss" where PSS cannot be read
    host_limit_bytes: int | None  # on CPU the memory limit applies to RAM
    loader_processes: int  # live worker processes of the training loader during the window
    child_processes: int  # all processes under the probe at their most
    peak_gpu_reserved_bytes: int | None = None  # torch.cuda.max_memory_reserved; None on CPU
    peak_gpu_allocated_bytes: int | None = None
    gpu_limit_bytes: int | None = None
    val_batch: int | None = None  # validation runs at 2x the training batch
    val_batch_s: float | None = None  # one validation batch, warm: preprocess, forward, loss, NMS, metric update
    val_data_s: float | None = None  # time to get a batch from the validation loader (mean, warm pass)
    val_first_s: float | None = None  # older probes: the untimed first batch, loading and all
    val_batches: int | None = None  # batches in the probe's validation pass
    val_pass_s: float | None = None  # the warm pass, end to end (Ultralytics' validator)
    val_fixed_s: float | None = None  # of which not in any batch: per pass (metrics, summary)
    val_first_pass_s: float | None = None  # the first, cold pass: its excess over the warm one is a one-time cost
    val_peak_gpu_bytes: int | None = None
    val_peak_host_bytes: int | None = None


@dataclass(frozen=True)
class CacheCost:
    """The one-time cost of building the image cache, measured on the subset and extrapolated to the dataset."""

    mode: str
    subset_images: int = 0
    subset_s: float = 0.0
    subset_bytes: int = 0
    full_images: int = 0  # train + val
    full_s: float = 0.0
    full_bytes: int = 0
    available_bytes: int | None = None  # RAM available (ram) or disk free beside the dataset (disk)
    fits: bool | None = None  # Ultralytics' own rule: 2x margin for RAM, 10% for disk
    rule: str = ""


@dataclass(frozen=True)
class CompileCost:
    """What torch.compile cost a probe: seconds paid once per training session, apart from the measured window."""

    mode: str  # the torch.compile mode (TrainConfig.compile)
    compile_s: float  # dynamo + inductor, forward and backward graphs, during the warm-up (before the window)
    recompile_s: float = 0.0  # the epoch's short last batch compiles once more (a new shape): timed after the window
    short_batch: int = 0  # images in that last batch; 0: the epoch has none, nothing to recompile
    first_iter_s: float = 0.0  # wall time of the first iteration, the compile included

    @property
    def one_time_s(self) -> float:
        return self.compile_s + self.recompile_s


@dataclass(frozen=True)
class FileState:
    """Were the image files read from the page cache (warm) or from disk (cold), and which is the real run's?"""

    resident_before: float | None  # share of the subset's file pages in RAM before the probe touched them
    resident_at_start: float | None  # after the page-cache action, when training started
    read: str  # cold | warm | mixed | unknown, at start
    regime: str  # what the full run's steady state will be: warm when its files fit in RAM
    regime_reason: str
    action: str  # what the probe did to match the regime: warmed, dropped, none


@dataclass(frozen=True)
class ProbeResult:
    status: str  # ok | oom | over_limit | timeout | crashed | infeasible | pruned (stopped by a search)
    reason: str
    requested: dict[str, Any]
    effective: dict[str, Any]
    stats: IterStats | None
    memory: MemoryUse | None
    cache: CacheCost | None
    files: FileState | None
    workload: dict[str, Any]
    subset: dict[str, Any]
    timings: dict[str, Any]  # raw per-iteration seconds: warm-up and window, and every optimizer step
    warnings: tuple[str, ...] = ()
    machine: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # profiling: utilisation, compute_only, py_spy
    source_cost: CacheCost | None = None  # source=resized: the one-time resize of the whole dataset (extrapolated)
    compile_cost: CompileCost | None = None  # compile on: torch.compile's one-time seconds
    autotune_version: str = __version__
    created: str = ""
    duration_s: float = 0.0
    log_path: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def projected_epoch_s(self) -> float | None:
        n = self.workload.get("n_train")
        return n / self.stats.images_per_s if self.stats and n and self.stats.images_per_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["projected_epoch_s"] = self.projected_epoch_s()
        if self.compile_cost is None:  # as before the compile lever
            del d["compile_cost"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeResult:
        def opt(kind: type, v: Any) -> Any:
            return kind(**v) if isinstance(v, dict) else None

        return cls(
            status=d["status"],
            reason=d.get("reason", ""),
            requested=d.get("requested", {}),
            effective=d.get("effective", {}),
            stats=IterStats.from_dict(d["stats"]) if d.get("stats") else None,
            memory=opt(MemoryUse, d.get("memory")),
            cache=opt(CacheCost, d.get("cache")),
            files=opt(FileState, d.get("files")),
            workload=d.get("workload", {}),
            subset=d.get("subset", {}),
            timings=d.get("timings", {}),
            warnings=tuple(d.get("warnings", ())),
            machine=d.get("machine", {}),
            options=d.get("options", {}),
            extras=d.get("extras", {}),
            source_cost=opt(CacheCost, d.get("source_cost")),
            compile_cost=opt(CompileCost, d.get("compile_cost")),
            autotune_version=d.get("autotune_version", ""),
            created=d.get("created", ""),
            duration_s=d.get("duration_s", 0.0),
            log_path=d.get("log_path", ""),
        )


def failed(status: str, reason: str, config: TrainConfig, workload: Workload, **extra: Any) -> ProbeResult:
    """A result with no measurement: what went wrong, and what was asked."""
    return ProbeResult(
        status=status,
        reason=reason,
        requested=config.to_dict(),
        effective={},
        stats=None,
        memory=None,
        cache=None,
        files=None,
        workload=workload.to_dict(),
        subset={},
        timings={},
        created=now_iso(),
        **extra,
    )


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ValRate:
    """A validation pass as the probe timed it, at Ultralytics' 2x training batch: seconds per batch (loading and
    compute), seconds per pass beyond its batches, and the session's first pass's extra."""

    batch_s: float
    batch: int
    startup_s: float = 0.0  # the first pass's extra time (kernel tuning, first reads)
    fixed_s: float = 0.0  # per pass, beyond its batches: the metrics over all predictions, the summary

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValRate:
        return cls(**d)

    @classmethod
    def from_result(cls, r: ProbeResult) -> ValRate | None:
        return cls.from_rates(r.memory) if r.memory is not None else None

    @classmethod
    def from_rates(cls, m: MemoryUse) -> ValRate | None:
        """From a probe's validation fields (None where it measured no validation)."""
        if m.val_batch_s is None or not m.val_batch:
            return None
        batch_s = m.val_batch_s + (m.val_data_s or 0.0)
        if m.val_pass_s is not None:  # Ultralytics' validator, two passes
            startup = max((m.val_first_pass_s or m.val_pass_s) - m.val_pass_s, 0.0)
            return cls(batch_s=batch_s, batch=m.val_batch, startup_s=startup, fixed_s=m.val_fixed_s or 0.0)
        startup = max(m.val_first_s - batch_s, 0.0) if m.val_first_s is not None else 0.0  # older probes: batches
        return cls(batch_s=batch_s, batch=m.val_batch, startup_s=startup)


def validates_after(epoch: int, epochs: int, every: int = 1, val: bool = True) -> bool:
    """Whether a run validates after `epoch` (0-based): every `every`-th epoch with val on, always the last."""
    return (val and (epoch + 1) % every == 0) or epoch == epochs - 1


def validation_passes(epochs: int, every: int = 1) -> int:
    """Validation passes in a run: after every `every`-th epoch and the last, and once more for best.pt."""
    return sum(validates_after(e, epochs, every) for e in range(epochs)) + 1


def val_seconds(n_val: int, val: ValRate | None, first: bool = False) -> float | None:
    """One validation pass: every validation batch at the measured per-batch time, plus the pass's own remainder;
    the session's first pass also pays its one-time extra."""
    if val is None or n_val <= 0:
        return None
    return math.ceil(n_val / val.batch) * val.batch_s + val.fixed_s + (val.startup_s if first else 0.0)
