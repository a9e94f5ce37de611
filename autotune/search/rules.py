"""The search's small rules, each on plain values: pruning a clearly slower trial, the constraints of a probe's
result, its one-time costs and peak memory, a joining worker's own sampler seed, a worker that is still alive, and
the host lock that keeps probes on one host from overlapping."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autotune import status
from autotune.records.probe import ProbeResult
from autotune.records.search import RANK_EPOCH
from autotune.search import store

PRUNE_FACTOR = 1.5  # "clearly slower": the running projection is 1.5x the best finished trial's
PRUNE_MIN_STEPS = 4  # measured iterations before a running trial may be pruned


class SlowerThanBest:
    """Prune a running trial whose projected epoch time is clearly (1.5x) worse than the best finished one."""

    def __init__(self, factor: float = PRUNE_FACTOR, min_steps: int = PRUNE_MIN_STEPS) -> None:
        self.factor, self.min_steps = factor, min_steps

    def prune(self, study: Any, trial: Any) -> bool:
        steps = trial.intermediate_values
        if len(steps) < self.min_steps:
            return False
        best = store.best_feasible_value(study.get_trials(deepcopy=False))
        return best is not None and steps[max(steps)] > self.factor * best


def one_time_s(result: ProbeResult) -> float:
    """Seconds paid once per run for this config: its cache build, its resized copy (whole dataset) and its
    torch.compile (the first iterations' and the short last batch's compiles)."""
    cache = result.cache.full_s if result.cache and result.cache.mode != "none" else 0.0
    compiled = result.compile_cost.one_time_s if result.compile_cost else 0.0
    return cache + (result.source_cost.full_s if result.source_cost else 0.0) + compiled


def ranked_epoch_s(
    n_train: int, images_per_s: float, one_time: float, epochs: int, val_s: float | None, rank_on: str
) -> float:
    """What the search minimises, in seconds: one epoch's training at the measured rate, one validation pass where
    the study ranks on the whole epoch (Ultralytics validates after every epoch), and the one-time costs spread
    over the planned epochs (a short run rightly loses a slow cache build)."""
    val = (val_s or 0.0) if rank_on == RANK_EPOCH else 0.0
    return n_train / images_per_s + val + one_time / epochs


def peak_memory(result: ProbeResult) -> int | None:
    """The peak that counts against the limit: GPU memory reserved on CUDA, else the process tree's PSS."""
    m = result.memory
    if m is None:
        return None
    if m.peak_gpu_reserved_bytes is not None:
        return max(m.peak_gpu_reserved_bytes, m.val_peak_gpu_bytes or 0)
    return max(m.peak_host_bytes, m.val_peak_host_bytes or 0)


def constraint_values(result: ProbeResult, limit: int | None) -> tuple[float, float, str]:
    """(memory, other) constraint values (<= 0 feasible) and the reason."""
    if result.status != "ok":
        return (*status.constraint_values(result.status), result.reason)
    peak = peak_memory(result)
    if limit is not None and peak is not None:
        return (peak - limit) / limit, 0.0, ""
    return 0.0, 0.0, ""


def worker_seed(seed: int, worker: str) -> int:
    """A sampler seed of a worker's own, derived from the study's seed and the worker (host:pid)."""
    return int(hashlib.sha256(f"{seed}:{worker}".encode()).hexdigest()[:8], 16)


def autotune_alive(pid: int) -> bool:
    """Whether `pid` is a live autotune process (a reused pid of another program does not count)."""
    import psutil

    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE and any("autotune" in part for part in p.cmdline())
    except psutil.Error:
        return False


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
