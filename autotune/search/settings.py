"""What a search is asked to do (SearchSettings) and what it reports (SearchOutcome): plain values."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.machine import Machine
from autotune.records.probe import ProbeResult
from autotune.records.search import RANK_EPOCH, Space, TrialRecord
from autotune.search.sidebyside import SideBySide


def default_study_name(workload: Workload, machine: Machine, space: Space, dataset_key: str) -> str:
    blob = json.dumps(
        {"model": workload.model, "data": dataset_key, "epochs": workload.epochs, "machine": machine.identity()},
        sort_keys=True,
    )
    return f"autotune-{hashlib.sha256(blob.encode()).hexdigest()[:8]}-{space.digest()}"


@dataclass(frozen=True)
class SearchSettings:
    budget_s: float
    storage: str
    study: str
    baseline: TrainConfig  # Ultralytics' defaults unless given; may lie outside the space
    probe_options: ProbeOptions
    memory_limit_bytes: int | None = None  # GPU memory on CUDA, RAM on CPU
    target_epoch_s: float | None = None
    seed: int = 0
    seeds: tuple[TrainConfig, ...] = ()  # extra seeds inside the space (AutoBatch's batch on a GPU)
    memory_limit_fraction: float | None = None  # the limit as a share of the device, for AutoBatch
    end_reserve_s: float | None = None  # kept back for the baseline's repeat; None: as long as the baseline took
    autobatch: dict[str, Any] | None = None  # AutoBatch's answer on a GPU: imgsz, fraction, batch or error
    lever_share: float = 0.25  # at most this share of the budget is kept for the report's factor probes (0: none)
    rank_on: str = RANK_EPOCH  # what a new study ranks on: the projected epoch with validation, or training alone
    ladder_after: int | None = 4  # finished trials before the batch ladder proposes rungs (ladder.py); None: never


@dataclass(frozen=True)
class SearchOutcome:
    study: str
    storage: str  # masked
    space: Space
    n_train: int
    baseline: ProbeResult | None
    baseline_end: ProbeResult | None
    trials: tuple[TrialRecord, ...]
    front: tuple[TrialRecord, ...]  # fastest feasible config per image size
    winner: TrialRecord | None
    pick_reason: str
    stop_reason: str
    elapsed_s: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    interrupted: bool = False
    autobatch: dict[str, Any] | None = None  # AutoBatch's answer this run or an earlier one (study attribute)
    side_by_side: SideBySide | None = None  # the fresh, interleaved measurements at the end of this run
    rank_on: str = RANK_EPOCH  # what the study ranked trials on (records.search.RANK_ON)
    epochs: int = 100  # the planned run's: one-time costs are spread over them

    @property
    def drift(self) -> float | None:
        """Baseline images/s at the end over at the start, minus 1: how much the machine moved meanwhile."""
        a, b = self.baseline, self.baseline_end
        if a and b and a.stats and b.stats:
            return b.stats.images_per_s / a.stats.images_per_s - 1
        return None


def outcome_to_dict(o: SearchOutcome) -> dict[str, Any]:
    d = asdict(o)
    d["baseline"] = o.baseline.to_dict() if o.baseline else None
    d["baseline_end"] = o.baseline_end.to_dict() if o.baseline_end else None
    d["drift"] = o.drift
    if o.side_by_side is not None:
        sb = o.side_by_side
        d["side_by_side"] = {
            "rounds": sb.rounds,
            "images_per_s": {role: list(v) for role, v in sb.rates.items()},
            "configs": {role: c.to_dict() for role, c in sb.configs.items()},
            "faster": sb.faster,
            "speedup": dict(zip(("factor", "low", "high", "from_repeats"), sb.speedup, strict=True))
            if sb.speedup
            else None,
            "noise_floor": sb.floor,
        }
    return d
