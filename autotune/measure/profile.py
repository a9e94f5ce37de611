"""Bottleneck diagnosis of one configuration: loader-only, compute-only and end-to-end throughput.

`profile()` measures (each part in its own subprocess) and returns plain data; `classify()` names the
bottleneck from those numbers alone, with its thresholds written down here.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.files import check_out_folder
from autotune.measure.cachebench import CacheBench, break_even_epochs, cache_bench
from autotune.measure.loader import LoaderResult, loader_only, worker_counts
from autotune.measure.probe import probe
from autotune.measure.stats import mean
from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.probe import ProbeResult

# The PyTorch profiler's rule of thumb flags a step as input-bound when the data loader takes more than 5% of it.
STALL_THRESHOLD = 0.05
# Two ceilings closer than 10% are "the same": run-to-run noise on these machines is 5-15%.
NEAR = 1.10
COMPUTE_ONLY_ITERS = 10


@dataclass(frozen=True)
class Diagnosis:
    verdict: str  # data-bound | compute-bound | balanced
    reason: str
    stall_fraction: float
    end_to_end_ips: float
    loader_ips: float | None  # loader-only ceiling at the config's workers
    compute_ips: float | None  # compute-only ceiling
    loader_headroom: float | None  # loader ceiling / end-to-end
    compute_headroom: float | None


def classify(
    stall_fraction: float, end_to_end_ips: float, loader_ips: float | None, compute_ips: float | None
) -> Diagnosis:
    """Name the bottleneck.

    - data-bound: the model waits on the loader for more than 5% of the time, and the loader alone is slower
      than the model alone (or the model side was not measured);
    - compute-bound: the model waits for data at most 5% of the time, and the loader alone could feed at least
      10% more than the run achieves;
    - balanced: the rest: either the model waits although each side alone is faster than the pair (they
      compete for the same CPU cores or memory bandwidth), or the loader only just keeps up.
    """
    lh = loader_ips / end_to_end_ips if loader_ips else None
    ch = compute_ips / end_to_end_ips if compute_ips else None

    def diag(verdict: str, reason: str) -> Diagnosis:
        return Diagnosis(verdict, reason, stall_fraction, end_to_end_ips, loader_ips, compute_ips, lh, ch)

    stalled = stall_fraction > STALL_THRESHOLD
    if stalled and (compute_ips is None or loader_ips is None or loader_ips * NEAR < compute_ips):
        return diag(
            "data-bound",
            f"the model waits for data {stall_fraction:.0%} of the time (over {STALL_THRESHOLD:.0%}); "
            + (
                f"the loader alone feeds {loader_ips:.0f} images/s, the model alone takes {compute_ips:.0f}"
                if loader_ips and compute_ips
                else "the loader is the slower side"
            ),
        )
    if stalled:
        return diag(
            "balanced",
            f"the model waits for data {stall_fraction:.0%} of the time, yet the loader alone ({loader_ips:.0f} "
            f"images/s) is not slower than the model alone ({compute_ips:.0f}): the two compete for the same CPU "
            "cores or memory bandwidth",
        )
    if lh is not None and lh < NEAR:
        return diag(
            "balanced",
            f"the model rarely waits ({stall_fraction:.1%} stall), but the loader alone feeds only {lh:.2f}x what "
            "the run achieves: any faster model side would make it data-bound",
        )
    return diag(
        "compute-bound",
        f"the model waits for data only {stall_fraction:.1%} of the time (at most {STALL_THRESHOLD:.0%})"
        + (f"; the loader alone could feed {lh:.1f}x more" if lh else ""),
    )


@dataclass(frozen=True)
class CacheAdvice:
    mode: str
    build_s: float  # one-time, whole dataset
    saved_s_per_epoch: float  # per-image read time saved against 'none' x training images, if the loader is the limit
    break_even_epochs: float | None


@dataclass(frozen=True)
class Profile:
    config: dict[str, Any]
    workload: dict[str, Any]
    diagnosis: Diagnosis | None
    probe: ProbeResult
    compute_only_ips: float | None
    scaling: tuple[LoaderResult, ...]
    cache: CacheBench | None
    cache_error: str
    cache_advice: tuple[CacheAdvice, ...]
    page_cache_note: str
    notes: tuple[str, ...] = ()
    machine: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["probe"] = self.probe.to_dict()
        return d


def compute_only_ips(result: ProbeResult) -> float | None:
    """Images/s of forward + backward on a batch already on the device, plus the window's optimizer step share."""
    co = result.extras.get("compute_only") or {}
    times = co.get("fwd_bwd_s")
    if not times or result.stats is None:
        return None
    per_iter = mean(times) + result.stats.step_share_s
    return co["batch"] / per_iter


def cache_advice(bench: CacheBench, n_train: int, regime: str) -> tuple[CacheAdvice, ...]:
    """Break-even epochs of each cache against reading image files in the full run's page-cache regime."""
    base = bench.read("none", "cold" if regime == "cold" else "warm")
    out = []
    for build in bench.builds:
        state = "memory" if build.mode == "ram" else ("cold" if regime == "cold" else "warm")
        r = bench.read(build.mode, state)
        if base is None or r is None:
            continue
        saved = (base.per_image_s - r.per_image_s) * n_train
        out.append(CacheAdvice(build.mode, build.full_s, saved, break_even_epochs(build.full_s, saved)))
    return tuple(out)


def page_cache_note(bench: CacheBench, regime: str) -> str:
    cold, warm = bench.read("none", "cold"), bench.read("none", "warm")
    if cold is None or warm is None:
        return ""
    hidden = 1 - warm.per_image_s / cold.per_image_s
    where = (
        "your image files fit in RAM, so after the first epoch the real run reads them warm"
        if regime != "cold"
        else "your image files do not fit in RAM, so the real run reads them cold: trust the cold figure"
    )
    return (
        f"none: {cold.per_image_s * 1000:.1f} ms/image cold vs {warm.per_image_s * 1000:.1f} ms warm; the page cache "
        f"hides {hidden:.0%} of the read cost; {where}"
    )


def profile(
    config: TrainConfig,
    workload: Workload,
    options: ProbeOptions,
    workers: list[int] | None = None,
    py_spy: bool = False,
    on_step: Callable[[str], None] = lambda _: None,
) -> Profile:
    """Measure everything `autotune profile` shows. Each measurement runs in its own subprocess."""
    from autotune.measure.machine import fingerprint

    on_step("end-to-end probe with utilisation sampling")
    e2e = probe(
        config,
        workload,
        replace(options, utilisation=True, compute_only_iters=COMPUTE_ONLY_ITERS, py_spy=py_spy),
    )
    counts = workers if workers is not None else worker_counts(os.cpu_count() or 1)
    if config.workers not in counts:
        counts = sorted({*counts, config.workers})
    scaling = []
    for w in counts:
        on_step(f"loader only, {w} workers")
        scaling.append(loader_only(config.with_(workers=w), workload, options))
    on_step("cache bench")
    bench = cache_bench(config, workload, options)
    cache = bench if isinstance(bench, CacheBench) else None
    regime = e2e.files.regime if e2e.files else "warm"
    n_train = int(e2e.workload.get("n_train") or 0)
    co = compute_only_ips(e2e)
    at_config = next((s for s in scaling if s.workers == config.workers and s.status == "ok"), None)
    diagnosis = None
    if e2e.stats is not None:
        diagnosis = classify(
            e2e.stats.stall_fraction, e2e.stats.images_per_s, at_config.images_per_s if at_config else None, co
        )
    notes = []
    cores = e2e.machine.get("usable_cores", os.cpu_count())
    if config.device == "cpu":
        notes.append(
            f"on a CPU-only machine the loader workers and the model share the same {cores} cores: each ceiling "
            "is measured alone, so together they reach less than either"
        )
    if config.device == "cpu" and diagnosis is not None and diagnosis.verdict != "data-bound":
        notes.append(
            "the cache's break-even assumes the loader limits the run; here it does not, but on a CPU-only "
            "machine every image decode takes CPU time from the model, so a cache can still shorten the epoch: "
            "probe cache=ram or cache=disk to measure it"
        )
    util = e2e.extras.get("utilisation")
    if util and util.get("overhead", 0) > 0.03:
        notes.append(f"the utilisation sampler cost {util['overhead']:.1%} of the probe's CPU time (target < 3%)")
    return Profile(
        config=config.to_dict(),
        workload=e2e.workload or workload.to_dict(),
        diagnosis=diagnosis,
        probe=e2e,
        compute_only_ips=co,
        scaling=tuple(scaling),
        cache=cache,
        cache_error="" if cache else str(bench),
        cache_advice=cache_advice(cache, n_train, regime) if cache and n_train else (),
        page_cache_note=page_cache_note(cache, regime) if cache else "",
        notes=tuple(notes),
        machine=fingerprint().to_dict(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


def parse_worker_list(text: str | None) -> list[int] | None:
    """`--worker-list 0,1,2,4` -> [0, 1, 2, 4]; None keeps the default scaling."""
    if text is None:
        return None
    try:
        counts = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"--worker-list must be whole numbers separated by commas, got {text!r}") from None
    if not counts or min(counts) < 0:
        raise UserError(f"--worker-list must hold workers >= 0, got {text!r}")
    return counts


def profile_folder(out: Path | None) -> Path:
    """Where a profile's files go: --out, or reports/profile-<time>; a file there is refused before any work."""
    return check_out_folder(out or Path("reports") / f"profile-{_dt.datetime.now():%Y%m%d-%H%M%S}")


def saturation(scaling: tuple[LoaderResult, ...], within: float = 0.10) -> int | None:
    """The fewest workers whose loader-only throughput is within `within` (relative) of the best measured."""
    ok = sorted((s for s in scaling if s.status == "ok" and s.images_per_s), key=lambda s: s.workers)
    if not ok:
        return None
    best = max(s.images_per_s for s in ok if s.images_per_s)
    return next(s.workers for s in ok if s.images_per_s and s.images_per_s >= best / (1 + within))
