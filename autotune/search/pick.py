"""Which configuration wins (pure): the fastest feasible one, or with an epoch-time target, the fastest at the
largest image size that meets it; and the speed vs resolution front it is picked from."""

from __future__ import annotations

import math
from collections.abc import Sequence

from autotune.records.search import TrialRecord


def front(records: Sequence[TrialRecord]) -> tuple[TrialRecord, ...]:
    """For each image size, its fastest feasible config: the speed vs resolution front."""
    best: dict[int, TrialRecord] = {}
    for r in records:
        if r.feasible and r.epoch_s is not None:
            s = int(r.config["imgsz"])
            if s not in best or r.epoch_s < (best[s].epoch_s or math.inf):
                best[s] = r
    return tuple(best[s] for s in sorted(best))


def pick(records: Sequence[TrialRecord], target_epoch_s: float | None) -> tuple[TrialRecord | None, str]:
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
