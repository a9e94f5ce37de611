"""One probe: real Ultralytics training of one configuration for a short, steady-state window.

`probe()` is what callers use: it runs measure.measure() in its own subprocess (isolate.py) and always returns
a ProbeResult, whatever happened. This module holds the result types and the caller's side.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autotune import __version__
from autotune.config import (
    ProbeOptions,
    TrainConfig,
    Workload,
)
from autotune.dataset import (
    load_dataset,
)
from autotune.stats import IterStats
from autotune.stats import projected_epoch_s as epoch_seconds

Heartbeat = Callable[[dict[str, Any]], None]


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
    val_batch_s: float | None = None  # forward + NMS of one validation batch, after one untimed batch
    val_data_s: float | None = None  # time to get that batch from the loader
    val_first_s: float | None = None  # the untimed first batch, loading and all: the val loader's workers start there
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
    autotune_version: str = __version__
    created: str = ""
    duration_s: float = 0.0
    log_path: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def projected_epoch_s(self) -> float | None:
        n = self.workload.get("n_train")
        return epoch_seconds(n, self.stats.images_per_s) if self.stats and n else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["projected_epoch_s"] = self.projected_epoch_s()
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


def request_for(config: TrainConfig, workload: Workload, options: ProbeOptions, scratch: Path) -> dict[str, Any]:
    """What crosses the subprocess boundary: plain JSON."""
    return {
        "config": config.to_dict(),
        "workload": workload.to_dict(),
        "options": options.to_dict(),
        "scratch": str(scratch),
    }


def parse_request(request: dict[str, Any]) -> tuple[TrainConfig, Workload, ProbeOptions, Path]:
    return (
        TrainConfig.from_dict(request["config"]),
        Workload.from_dict(request["workload"]),
        ProbeOptions.from_dict(request["options"]),
        Path(request["scratch"]),
    )


# ----------------------------------------------------------------------------------------------------------------
# The caller's side.


def predicted_setup_s(config: TrainConfig, options: ProbeOptions, n_images: int) -> float:
    """Generous time to reach the first iteration: imports, model build, dataset scan, subset cache build."""
    staged = min((options.warmup_max + options.iters + 1) * config.batch, n_images)
    per_image = 0.05 if config.cache == "none" else 0.15  # decode (+ write .npy) seconds per image, slow disk
    return 180.0 + staged * per_image


def scratch_root(options: ProbeOptions) -> Path:
    from autotune.demo import cache_root

    root = Path(options.scratch).expanduser() if options.scratch else cache_root() / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    return root


def probe(
    config: TrainConfig,
    workload: Workload,
    options: ProbeOptions | None = None,
    on_progress: Heartbeat | None = None,
) -> ProbeResult:
    """Measure one configuration in its own subprocess. Never raises for what happens inside the probe."""
    from autotune import isolate
    from autotune.machine import fingerprint

    options = options or ProbeOptions()
    n_images = len(load_dataset(workload.data).train)  # bad input fails here, loudly, before any subprocess
    policy = isolate.TimeoutPolicy(
        startup_s=predicted_setup_s(config, options, n_images),
        hard_s=options.timeout_s,
    )
    with isolate.scratch_dir(scratch_root(options), "probe-", keep=options.keep_scratch) as work:
        request = request_for(config, workload, options, work)
        outcome = isolate.run_isolated("autotune.measure:run_in_subprocess", request, work, policy, on_progress)
        if outcome.status == "pruned":
            result = failed("pruned", "stopped early: clearly slower than the best so far", config, workload)
        elif outcome.result is not None and outcome.status == "ok":
            result = ProbeResult.from_dict(outcome.result)
            if result.status == "crashed" and outcome.oom_killed:
                result = ProbeResult(**{**result.__dict__, "status": "oom", "reason": result.reason + " (OOM killer)"})
        else:
            result = failed(outcome.status, outcome.reason, config, workload, options=options.to_dict())
        log_copy = _keep_log(work)
    return ProbeResult(
        **{
            **result.__dict__,
            "machine": fingerprint().to_dict(),
            "duration_s": outcome.duration_s,
            "log_path": str(log_copy) if log_copy else "",
        }
    )


def _keep_log(work: Path) -> Path | None:
    """Keep the probe's log (Ultralytics' output) outside the scratch folder, which is deleted."""
    log = work / "probe.log"
    if not log.exists():
        return None
    dest_dir = work.parent.parent / "logs"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{work.name}.log"
    shutil.copyfile(log, dest)
    return dest
