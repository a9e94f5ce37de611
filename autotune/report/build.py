"""The report's data: the speedup breakdown of one study, built from a snapshot of the study storage alone.

`build()` turns a StudySnapshot (search/store.py reads it) into ReportData: pure, testable with hand-picked numbers;
documents.py, charts.py and terminal.py only draw it. Everything a chart or a table shows is computed here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from autotune.errors import UserError
from autotune.measure.stats import NOISE_FLOOR, mean, noise_floor, product_interval, quotient_interval, ratio_interval
from autotune.records.config import TrainConfig
from autotune.records.probe import ProbeResult, ValRate, val_seconds
from autotune.records.run import TrainRun
from autotune.records.search import StudySnapshot, TrialRecord
from autotune.report import factors, story
from autotune.report.compiling import compile_summaries
from autotune.report.data import FactorRow, ReportData, Side, TrialPoint
from autotune.report.validation import validation_summary
from autotune.search import levers, sidebyside
from autotune.search.levers import AMP_LEVER, LEVERS, REVERSED
from autotune.status import CANNOT_RUN

NO_LEVER = "The winner is the baseline's own configuration: no lever changed, so there is nothing to break down."


def _ok_ips(results: list[ProbeResult]) -> list[float]:
    return [r.stats.images_per_s for r in results if r.ok and r.stats is not None]


def _side(config: TrainConfig, results: list[ProbeResult], n_train: int, n_val: int, reference: bool = False) -> Side:
    """What was measured of one config; the reference (baseline) counts even over the memory limit: it ran."""
    ok = [r for r in results if r.stats is not None and (r.ok or (reference and r.status == "over_limit"))]
    ips = tuple(r.stats.images_per_s for r in ok)  # type: ignore[union-attr]
    rate = mean(ips) if ips else None
    last = ok[-1] if ok else None
    val_s = val_seconds(n_val, ValRate.from_result(last)) if last else None
    util = ((last.extras or {}).get("utilisation") or {}).get("gpu_util_mean") if last else None
    cache_s = last.cache.full_s if last and last.cache and config.cache != "none" else 0.0
    return Side(
        config=config.to_dict(),
        images_per_s=ips,
        stall_fraction=mean([r.stats.stall_fraction for r in ok]) if ok else None,  # type: ignore[union-attr]
        gpu_util=util,
        epoch_train_s=n_train / rate if rate else None,
        epoch_val_s=val_s,
        cache_build_s=cache_s,
        resize_s=last.source_cost.full_s if last and last.source_cost else 0.0,
        optimizer=next((r.effective["optimizer"] for r in results if r.effective.get("optimizer")), None),
        step_s=last.stats.step_s if last and last.stats else None,
        accumulate=last.stats.accumulate if last and last.stats else None,
        compile_s=last.compile_cost.one_time_s if last and last.compile_cost else 0.0,
        val_batch=last.memory.val_batch if last and last.memory else None,
    )


def _factor_row(
    p: levers.LeverProbe, lever_results: list[ProbeResult], base_ips: list[float], floor: float
) -> FactorRow:
    claim, naive, note = story.claim(p.lever, p.before, p.after)
    ips = _ok_ips(lever_results)
    blocked = [r for r in lever_results if r.status in CANNOT_RUN]
    if ips and base_ips:
        f, lo, hi, repeated = ratio_interval(base_ips, ips, floor)
        if p.lever in REVERSED:  # the probe ran SGD (FP32); the factor reads SGD -> the pinned optimizer (-> AMP)
            f, lo, hi, repeated = ratio_interval(ips, base_ips, floor)
        kind = "repeats" if repeated else f"noise floor +-{floor:.0%}"
        return FactorRow(p.lever, p.before, p.after, claim, naive, f, lo, hi, len(ips), "measured", note, kind)
    if blocked:
        why = f"{blocked[-1].status}: {blocked[-1].reason}"
        return FactorRow(p.lever, p.before, p.after, claim, naive, None, None, None, 0, "not measurable alone", why)
    if lever_results:
        why = f"{lever_results[-1].status}: {lever_results[-1].reason}"
        return FactorRow(p.lever, p.before, p.after, claim, naive, None, None, None, 0, "failed", why)
    return FactorRow(p.lever, p.before, p.after, claim, naive, None, None, None, 0, "not measured yet", note)


@dataclass(frozen=True)
class Breakdown:
    """The factor table's numbers: each lever alone, their products, end to end, the interaction, the waterfall.
    Every measured value carries an interval (low, high); products and quotients propagate them in log space."""

    rows: tuple[FactorRow, ...]
    end_to_end: tuple[float, float, float]  # factor, low, high
    naive_product: float | None
    measured_product: tuple[float, float, float] | None
    interaction: tuple[float, float, float] | None
    waterfall: tuple[factors.WaterfallStep, ...]
    searched: bool  # some searched lever changed


def breakdown(rows: list[FactorRow], base: Side, win: Side, floor: float) -> Breakdown:
    e2e = factors.measured_factor(list(base.images_per_s), list(win.images_per_s), floor)
    searched = [r for r in rows if r.lever in LEVERS]
    all_measured = bool(searched) and all(r.measured for r in searched)
    naive = [r.naive for r in searched if r.naive is not None]
    base_epoch = base.epoch_train_s or 0.0
    steps = (
        factors.waterfall(base_epoch, [(r.lever, r.measured) for r in searched if r.measured], e2e[0])
        if all_measured and base_epoch
        else []
    )
    prod = None
    if all_measured:
        prod = product_interval([(r.measured, r.low or r.measured, r.high or r.measured) for r in searched])  # type: ignore[misc]
    return Breakdown(
        rows=tuple(rows),
        end_to_end=e2e,
        naive_product=factors.product(naive) if naive else None,
        measured_product=prod,
        interaction=quotient_interval(e2e, prod) if prod else None,
        waterfall=tuple(steps),
        searched=bool(searched),
    )


def _check(snap: StudySnapshot) -> TrialRecord:
    """The winner's record; a UserError where there is nothing to report."""
    complete = [t for t in snap.trials if t.state == "COMPLETE"]
    if not complete:
        raise UserError(f"study {snap.name!r} has no finished trial yet: run `autotune search` on it first")
    if snap.baseline is None:
        raise UserError(f"study {snap.name!r} has no baseline measurement: it was not made by `autotune search`")
    winner = snap.trial(snap.winner) if snap.winner is not None else None
    if not any(t.feasible for t in complete) or winner is None:
        raise UserError(
            f"study {snap.name!r} has no feasible trial (every one was over the limit, out of memory or failed): "
            "nothing to report; search again with a larger --vram-limit or a smaller batch range"
        )
    return winner


def build(snap: StudySnapshot, epochs: int | None = None) -> ReportData:
    """The breakdown of one study (baseline -> winner); UserError where there is nothing to report."""
    win_rec = _check(snap)
    meta = snap.meta
    n_train = meta.n_train or 1
    n_val = meta.n_val or (max(meta.dataset.n_images - n_train, 0) if meta.dataset else max(n_train // 4, 1))
    epochs = epochs or meta.workload.epochs or 100
    base_cfg, win_cfg = meta.baseline, TrainConfig.from_dict(win_rec.config)

    def results(c: TrainConfig) -> list[ProbeResult]:
        return levers.results_for(c, snap)

    all_base = results(base_cfg)
    fresh = sidebyside.fresh_runs(snap.side_by_side, base_cfg, win_cfg)
    base = _side(base_cfg, fresh[0] if fresh else all_base, n_train, n_val, reference=True)
    win = _side(win_cfg, fresh[1] if fresh else results(win_cfg), n_train, n_val)
    floor = noise_floor(_ok_ips(all_base))
    probes = levers.lever_probes(base_cfg, win_cfg, base.optimizer)
    rows = [_factor_row(p, results(p.config), _ok_ips(all_base), floor) for p in probes]
    if base_cfg.device == "cpu":
        claim, naive, _ = story.claim(AMP_LEVER, "FP32", "AMP (FP16)")
        why = "Ultralytics trains in FP32 on a CPU (it turns AMP off there): measured only on a GPU"
        rows.append(FactorRow(AMP_LEVER, "FP32", "AMP", claim, naive, None, None, None, 0, "absent on a CPU", why))
    if not base.images_per_s or not win.images_per_s:
        b = snap.baseline
        raise UserError(
            f"study {snap.name!r} has no usable baseline measurement ({b.status if b else '?'}: "
            f"{(b.reason if b else '')[:120]}): nothing to compare the winner with"
        )
    bd = breakdown(rows, base, win, floor)

    def total(s: Side) -> float:
        return epochs * ((s.epoch_train_s or 0.0) + (s.epoch_val_s or 0.0)) + s.cache_build_s + s.resize_s + s.compile_s

    points = tuple(_point(t) for t in snap.trials if t.state == "COMPLETE" and t.config)
    on_gpu = base_cfg.device != "cpu"
    return ReportData(
        study=snap.name,
        storage=snap.storage,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        machine=meta.machine.summary() if meta.machine else "unknown machine",
        workload={**meta.workload.to_dict(), "n_train": meta.n_train, "n_val": n_val},
        space=meta.space.describe(),
        memory_limit_bytes=meta.memory_limit_bytes,
        epochs=epochs,
        baseline=base,
        winner=win,
        factors=bd.rows,
        naive_product=bd.naive_product,
        measured_product=bd.measured_product[0] if bd.measured_product else None,
        measured_product_interval=bd.measured_product[1:] if bd.measured_product else None,
        end_to_end=bd.end_to_end[0],
        end_to_end_low=bd.end_to_end[1],
        end_to_end_high=bd.end_to_end[2],
        end_to_end_source=(
            f"measured side by side at the end of the search ({min(len(base.images_per_s), len(win.images_per_s))} "
            "round(s), interleaved, order alternating)"
            if fresh
            else "every measurement of the two configurations, the winner's selection run included (optimistic): "
            "this study has no side-by-side runs of them"
        ),
        noise_floor=floor,
        interaction=bd.interaction[0] if bd.interaction and bd.searched else None,
        interaction_interval=bd.interaction[1:] if bd.interaction and bd.searched else None,
        interaction_text=story.interaction_text(bd.interaction, base, win, on_gpu) if bd.searched else NO_LEVER,
        same_imgsz=base_cfg.imgsz == win_cfg.imgsz,
        waterfall=bd.waterfall,
        total_baseline_s=total(base),
        total_winner_s=total(win),
        story=tuple(story.story_checks(meta.dataset, base, win, n_train, meta.machine)),
        recipe=story.RECIPE,
        points=points,
        front=_front(points),
        missing=tuple(r.lever for r in rows if r.state in ("not measured yet", "failed")),
        notes=_notes(results(base_cfg), base, base_cfg, win_cfg),
        train_runs=tuple(train_run_row(r) for r in snap.train_runs),
        compile=compile_summaries(snap.trials, n_train, epochs),
        validation=validation_summary(win, epochs),
    )


def _front(points: tuple[TrialPoint, ...]) -> tuple[TrialPoint, ...]:
    """The fastest feasible trial per image size, as the charts see it."""
    best: dict[int, TrialPoint] = {}
    for p in points:
        if (
            p.feasible
            and p.images_per_s
            and p.images_per_s > (best[p.imgsz].images_per_s or 0 if p.imgsz in best else 0)
        ):
            best[p.imgsz] = p
    return tuple(best[s] for s in sorted(best))


def _notes(base_results: list[ProbeResult], base: Side, base_cfg: TrainConfig, win_cfg: TrainConfig) -> tuple[str, ...]:
    notes = []
    if any(r.status == "over_limit" for r in base_results):
        notes.append("the baseline itself is over the memory limit: it is the reference all the same")
    if len(base.images_per_s) < 2:
        notes.append(
            "the baseline was measured once: it has no spread of its own, so each interval is at least the "
            f"{NOISE_FLOOR:.0%} noise floor"
        )
    if base_cfg.imgsz != win_cfg.imgsz:
        notes.append(
            f"the winner trains at imgsz {win_cfg.imgsz}, the baseline at {base_cfg.imgsz}: a smaller image is not a "
            "free win (accuracy may drop); the speedup is labelled as such"
        )
    return tuple(notes)


def train_run_row(r: TrainRun) -> dict[str, Any]:
    """One `autotune train` run as the report shows it: each epoch with its prediction (plain data)."""
    return {
        "id": r.id,
        "config": r.config,
        "status": r.status,
        "epochs": [
            {
                "epoch": e.epoch,
                "phase": e.phase,
                "train_s": e.train_s,
                "predicted_train_s": e.predicted_train_s,
                "train_error": e.train_error,
                "val_s": e.val_s,
                "predicted_val_s": e.predicted_val_s,
                "images_per_s": e.images_per_s,
            }
            for e in r.records
        ],
        "actual_s": r.actual_s,
        "predicted_s": r.predicted_s,
        "predicted_parts_s": r.predicted_parts_s,
        "final_metrics": r.final_metrics,
    }


def _point(t: TrialRecord) -> TrialPoint:
    c = t.config
    return TrialPoint(
        number=t.number,
        batch=int(c["batch"]),
        workers=int(c["workers"]),
        imgsz=int(c["imgsz"]),
        cache=str(c["cache"]),
        feasible=t.feasible,
        status=t.status if t.status != "complete" else "",
        images_per_s=t.images_per_s,
        peak_memory_bytes=t.peak_memory_bytes,
        source=str(c.get("source", "original")),
    )
