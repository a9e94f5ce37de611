"""Factor probes: the baseline with one lever changed to the winner's value, measured and kept in the study.

A lever's measured factor is (baseline with that lever changed) / baseline, in images/s. The probes live in
the study keyed by the probed configuration (the store's business), so they are found again whatever run made
them (the search's end-of-budget reserve, or `autotune report --measure`), and a trial that happened to
probe the same configuration counts as a measurement too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autotune.records.config import TrainConfig, Workload
from autotune.records.probe import ProbeResult, failed
from autotune.records.search import StudySnapshot
from autotune.records.status import SKIPPED
from autotune.status import CANNOT_RUN, SAYS_NOTHING

LEVERS = ("imgsz", "batch", "cache", "workers", "source", "compile")  # searched levers, in the report's order
OPTIMIZER_LEVER = "optimizer"  # not searched: the story's SGD -> Adam claim, measured as a step-cost factor
# Not searched either, measured on a GPU against the baseline: FP32 -> AMP (Ultralytics' default FP16 autocast) and
# AMP -> bfloat16 autocast. A CPU trains in FP32 whatever AMP says: no probe there (the report says why).
AMP_LEVER = "amp"
BF16_LEVER = "bf16"
# The probe runs the lever's "before" side; the factor reads baseline / probe
REVERSED = (OPTIMIZER_LEVER, AMP_LEVER)


@dataclass(frozen=True)
class LeverProbe:
    lever: str
    config: TrainConfig  # the baseline with only this lever changed
    before: str  # the baseline's value, for display
    after: str


def lever_probes(baseline: TrainConfig, winner: TrainConfig, pinned_optimizer: str | None) -> list[LeverProbe]:
    """One probe per lever where the winner differs from the baseline, then the optimizer's (SGD vs pinned), then
    on a GPU mixed precision's (FP32 and bfloat16 against Ultralytics' default FP16 AMP).

    The optimizer lever exists when Ultralytics pinned something other than SGD for this run length (AdamW
    for short runs, MuSGD for long ones): the probe runs the baseline with SGD, so the factor reads
    "SGD -> <pinned>" as the story's "SGD -> Adam 1.15x" does.
    """
    out = [
        LeverProbe(
            lever,
            baseline.with_(**{lever: getattr(winner, lever)}),
            str(getattr(baseline, lever)),
            str(getattr(winner, lever)),
        )
        for lever in LEVERS
        if getattr(winner, lever) != getattr(baseline, lever)
    ]
    if pinned_optimizer and pinned_optimizer.lower() != "sgd":
        out.append(LeverProbe(OPTIMIZER_LEVER, baseline.with_(optimizer="SGD"), "SGD", pinned_optimizer))
    if baseline.device != "cpu" and baseline.amp is True:
        out.append(LeverProbe(AMP_LEVER, baseline.with_(amp=False), "FP32", "AMP (FP16)"))
        out.append(LeverProbe(BF16_LEVER, baseline.with_(amp="bf16"), "AMP (FP16)", "AMP (bf16)"))
    return out


def results_for(config: TrainConfig, snap: StudySnapshot) -> list[ProbeResult]:
    """Every measurement of `config` in a study: trials, factor probes and, for the baseline, its references.

    The baseline's seeded trial reuses the reference probe: the same measurement is counted once (by its
    creation time and duration).
    """
    found = [r for r in snap.results.values() if TrainConfig.from_dict(r.requested) == config]
    found += list(snap.lever_results.get(config, ()))
    if config == snap.meta.baseline:
        found += [r for r in (snap.baseline, snap.baseline_end) if r is not None]
    seen, out = set(), []
    for r in found:
        key = (r.created, round(r.duration_s, 3), r.status)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def still_missing(probes: list[LeverProbe], snap: StudySnapshot, repeats: int = 1) -> list[LeverProbe]:
    """The probes whose configuration has fewer than `repeats` measurements (a failed one counts: it says the
    lever cannot change alone; a crash or timeout does not)."""
    out = []
    for p in probes:
        done = [r for r in results_for(p.config, snap) if r.status not in SAYS_NOTHING]
        if len(done) < repeats and not any(r.status in CANNOT_RUN for r in done):
            out.append(p)
    return out


def run_lever_probes(
    todo: list[LeverProbe],
    workload: Workload,
    probe_fn: Callable[[TrainConfig], ProbeResult],
    keep: Callable[[TrainConfig, str, ProbeResult], None],
    can_start: Callable[[TrainConfig], bool],
    skip_reason: Callable[[TrainConfig], str | None] = lambda c: None,
    on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None,
) -> int:
    """Probe each lever in order where `can_start(config)` (the time left fits its probe: a compiled one compiles
    for minutes on a small CPU, an uncompiled one after it may still fit); a config known not to fit in memory is
    kept as such, unprobed.

    Returns how many were measured or recorded.
    """
    done = 0
    for p in todo:
        why = skip_reason(p.config)
        if why is None and not can_start(p.config):
            continue
        on_event("lever", {"lever": p.lever, "config": p.config})
        result = failed(SKIPPED, why, p.config, workload) if why else probe_fn(p.config)
        keep(p.config, p.lever, result)
        on_event("lever_done", {"lever": p.lever, "result": result})
        done += 1
    return done
