"""Side by side at the end of a search: the winner, a runner-up within noise and the baseline, measured again.

A search keeps the trial whose probe read fastest, and of many noisy probes that is the luckiest one: on hidden
data a 5-minute CPU search reported its winner at 1.48x the baseline where the same two configurations, measured
side by side, differ by 1.16x. So the search ends by measuring the candidates again, interleaved, the order
alternating from one round to the next (baseline, winner, runner-up; then runner-up, winner, baseline), so a
machine that drifts meanwhile moves them all alike. Those fresh runs, never the selection run, give the winner's
images/s, the headline speedup, the end-to-end factor and `train`'s prediction; where the runner-up measures
faster than the winner in them, it wins.

Pure: plans and summaries over plain data. runner.py runs the probes, store.py keeps them (records.SideProbe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autotune.measure.stats import NOISE_FLOOR, mean, noise_floor, ratio_interval
from autotune.records.config import TrainConfig
from autotune.records.probe import ProbeResult
from autotune.records.search import SideProbe, TrialRecord

BASELINE, WINNER, RUNNER_UP = "baseline", "winner", "runner-up"
ROUNDS = 2  # each candidate is measured at least twice: one fresh run has no spread to show
BUDGET_SHARE = 0.4  # the most of a search's budget kept back for this phase (trials come first)


@dataclass(frozen=True)
class Candidate:
    role: str
    config: TrainConfig
    selection_ips: float | None = None  # what its trial read when it was selected (None for the baseline)


def candidates(
    baseline: TrainConfig, records: Sequence[TrialRecord], winner: TrialRecord, noise: float = NOISE_FLOOR
) -> list[Candidate]:
    """The baseline, the winner, and the best other feasible trial if its projected epoch is within `noise` of
    the winner's (the two are then not told apart by one probe each)."""
    win = TrainConfig.from_dict(winner.config)
    out = [Candidate(BASELINE, baseline)]
    if win != baseline:
        out.append(Candidate(WINNER, win, winner.images_per_s))
    others = [
        r
        for r in records
        if r.state == "COMPLETE" and r.feasible and r.epoch_s is not None and r.number != winner.number
        and TrainConfig.from_dict(r.config) not in (win, baseline)
    ]  # fmt: skip
    if others and winner.epoch_s:
        best = min(others, key=lambda r: r.epoch_s or float("inf"))
        if (best.epoch_s or float("inf")) <= winner.epoch_s * (1 + noise):
            out.append(Candidate(RUNNER_UP, TrainConfig.from_dict(best.config), best.images_per_s))
    return out


def schedule(cands: Sequence[Candidate], rounds: int = ROUNDS) -> list[tuple[int, Candidate]]:
    """(round, candidate) in the order to probe them: forward in even rounds, backward in odd ones."""
    out = []
    for k in range(rounds):
        order = list(cands) if k % 2 == 0 else list(reversed(cands))
        out += [(k, c) for c in order]
    return out


@dataclass(frozen=True)
class SideBySide:
    """What one run's side-by-side phase measured, summarised."""

    run: str
    rounds: int  # rounds completed by every candidate
    rates: dict[str, tuple[float, ...]]  # role -> images/s of its fresh runs, in order (ok probes only)
    configs: dict[str, TrainConfig]
    faster: str | None  # winner or runner-up: which measured faster side by side (None without a winner)
    speedup: tuple[float, float, float, bool] | None  # faster vs baseline: factor, low, high, from repeats
    floor: float  # the noise floor used where a side has one measurement

    @property
    def winner_ips(self) -> float | None:
        rates = self.rates.get(self.faster or "", ())
        return mean(rates) if rates else None


def latest_run(probes: Sequence[SideProbe]) -> list[SideProbe]:
    """The probes of the most recent run's side-by-side phase."""
    if not probes:
        return []
    last = max(p.run for p in probes)
    return [p for p in probes if p.run == last]


def summarize(probes: Sequence[SideProbe], extra_baseline_ips: Sequence[float] = ()) -> SideBySide | None:
    """One run's side-by-side probes as rates per role, the faster of winner and runner-up, and its speedup over
    the baseline. `extra_baseline_ips` (the baseline's other measurements) only widen the noise floor."""
    if not probes:
        return None
    rates: dict[str, list[float]] = {}
    configs: dict[str, TrainConfig] = {}
    for p in probes:
        configs[p.role] = p.config
        rates.setdefault(p.role, [])
        if p.result.ok and p.result.stats is not None:
            rates[p.role].append(p.result.stats.images_per_s)
    contenders = [r for r in (WINNER, RUNNER_UP) if rates.get(r)]
    faster = max(contenders, key=lambda r: mean(rates[r])) if contenders else None
    base = rates.get(BASELINE, [])
    floor = noise_floor([*base, *extra_baseline_ips])
    speedup = ratio_interval(base, rates[faster], floor) if faster and base else None
    counts = [len(v) for v in rates.values()]
    return SideBySide(
        run=probes[0].run,
        rounds=min(counts) if counts else 0,
        rates={k: tuple(v) for k, v in rates.items()},
        configs=configs,
        faster=faster,
        speedup=speedup,
        floor=floor,
    )


def promote_runner_up(records: Sequence[TrialRecord], winner: TrialRecord, side: SideBySide) -> tuple[TrialRecord, str]:
    """The runner-up's trial as the winner, with why, where it measured faster side by side."""
    config = side.configs[RUNNER_UP]
    same = [r for r in records if r.feasible and r.config and TrainConfig.from_dict(r.config) == config]
    if not same:
        return winner, "fastest projected epoch"
    runner = min(same, key=lambda r: r.epoch_s or float("inf"))
    w, r = mean(side.rates[WINNER]) if side.rates.get(WINNER) else 0.0, mean(side.rates[RUNNER_UP])
    return runner, (
        f"measured side by side, trial {runner.number} ({r:.1f} images/s) was faster than trial {winner.number} "
        f"({w:.1f}), which its selection run had put first"
    )


def _ok(results: Sequence[ProbeResult]) -> list[ProbeResult]:
    return [r for r in results if r.ok and r.stats is not None]


def fresh_runs(
    probes: Sequence[SideProbe], base: TrainConfig, win: TrainConfig
) -> tuple[list[ProbeResult], list[ProbeResult]] | None:
    """The baseline's and the winner's runs from the latest side-by-side phase that measured both, or None."""
    for run in sorted({p.run for p in probes}, reverse=True):
        same = [p for p in probes if p.run == run]
        b = [p.result for p in same if p.config == base]
        w = [p.result for p in same if p.config == win]
        if _ok(b) and _ok(w):
            return b, w
    return None


def representative(results: Sequence[ProbeResult]) -> ProbeResult | None:
    """Of a config's fresh runs, the one whose images/s is closest to their mean (what a prediction starts from)."""
    ok = _ok(results)
    if not ok:
        return None
    m = mean([r.stats.images_per_s for r in ok])  # type: ignore[union-attr]
    return min(ok, key=lambda r: abs(r.stats.images_per_s - m))  # type: ignore[union-attr]
