"""The batch ladder: the best configuration so far, tried again at twice its batch.

Throughput rises with batch until memory or the data loader stops it. TPE samples batch log-uniformly, so a short
search seldom tries the top of the range: the CPU benchmark's 4-minute search won at batch 22 where 32 was faster
(bench/results/compare_cpu.md). After the sampler's first trials, the search proposes the best configuration at
twice its batch. That proposal is capped by the space, by the memory model under the limit, and below the smallest
batch that already failed on memory with the same other settings. Each rung that wins proposes the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autotune.records.search import Space, TrialRecord
from autotune.search.space import MemoryModel
from autotune.status import MEMORY_WALL

OTHER_KEYS = ("workers", "imgsz", "cache", "source", "compile")  # what must match for two trials to share a ladder
HEADROOM = 0.9  # a rung must be predicted under 90% of the limit: the memory model is a fit, not a measurement


def _same_rest(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in OTHER_KEYS)


def _failed_on_memory(r: TrialRecord) -> bool:
    """Out of memory, over the limit, or skipped as predicted over it (the store marks all three)."""
    return r.memory_wall or r.status in MEMORY_WALL


def next_rung(
    records: Sequence[TrialRecord],
    space: Space,
    model: MemoryModel | None,
    limit_bytes: int | None,
) -> dict[str, Any] | None:
    """The config to try next on the ladder (the best one at a larger batch), or None when there is no rung left."""
    done = [r for r in records if r.feasible and r.epoch_s is not None]
    if not done:
        return None
    best = min(done, key=lambda r: r.epoch_s or 0.0)
    batch, imgsz = int(best.config["batch"]), int(best.config["imgsz"])
    cap = space.batch_high
    for r in records:  # below any batch that already failed on memory with these settings (or a smaller image)
        if _failed_on_memory(r) and _same_rest(r.config, best.config):
            cap = min(cap, int(r.config["batch"]) - 1)
    if limit_bytes is not None and model is not None and model.slope > 0:
        # the largest batch predicted under the headroom: intercept + slope * b * imgsz^2 <= HEADROOM * limit
        cap = min(cap, int((HEADROOM * limit_bytes - model.intercept) / (model.slope * imgsz * imgsz)))
    rung = min(2 * batch, cap)
    if rung <= batch:
        return None
    tried = {int(r.config["batch"]) for r in records if _same_rest(r.config, best.config)}
    if rung in tried:  # already measured (and not better, or it would be the best): the ladder ends here
        return None
    return {**best.config, "batch": rung}
