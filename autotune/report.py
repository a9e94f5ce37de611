"""The report's data: the speedup breakdown of one study, computed from the study storage alone.

`snapshot()` reads a study into plain data; `build()` turns that into ReportData (pure, testable with
hand-picked numbers); reportdoc.py and charts.py only draw it. Everything a chart or a table shows is here.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from autotune import factors, levers
from autotune.config import TrainConfig
from autotune.errors import UserError
from autotune.factors import STORY, STORY_PRODUCT_CLAIM, STORY_REALITY
from autotune.levers import ALONE_STATUSES, LEVERS, OPTIMIZER_LEVER
from autotune.machine import Machine
from autotune.probe import ProbeResult
from autotune.profiler import STALL_THRESHOLD
from autotune.space import Space
from autotune.stats import mean

GiB = 2**30


@dataclass(frozen=True)
class TrialPoint:
    """One trial as the charts see it."""

    number: int
    batch: int
    workers: int
    imgsz: int
    cache: str
    feasible: bool
    status: str
    images_per_s: float | None
    peak_memory_bytes: int | None
    source: str = "original"


@dataclass(frozen=True)
class Snapshot:
    """A study read from storage: its attributes and its finished trials, nothing else."""

    study: str
    storage: str  # masked
    user_attrs: dict[str, Any]
    trials: tuple[dict[str, Any], ...]  # number, state, value, user_attrs of COMPLETE trials


@dataclass(frozen=True)
class FactorRow:
    lever: str
    before: str
    after: str
    claim: str  # the story's claim, as it states it
    naive: float | None  # the story's rule for this change, on the user's numbers
    measured: float | None
    low: float | None
    high: float | None
    n: int  # measurements of the lever's config
    state: str  # measured | not measurable alone | not measured yet | failed
    note: str = ""

    @property
    def indistinguishable_from_one(self) -> bool:
        return self.low is not None and self.high is not None and self.low <= 1.0 <= self.high


@dataclass(frozen=True)
class Side:
    """The baseline or the winner: config and what was measured of it."""

    config: dict[str, Any]
    images_per_s: tuple[float, ...]
    stall_fraction: float | None
    gpu_util: float | None
    epoch_train_s: float | None  # projected from the mean rate
    epoch_val_s: float | None  # val set / (2 x batch) batches at the measured val-batch time
    cache_build_s: float  # one-time, whole dataset (0 without a cache)
    resize_s: float  # one-time: the copy pre-resized to imgsz (0 from the original files)
    optimizer: str | None
    step_s: float | None  # one optimizer step
    accumulate: int | None


@dataclass(frozen=True)
class StoryCheck:
    claim: str
    verdict: str


@dataclass(frozen=True)
class ReportData:
    study: str
    storage: str
    created: str
    machine: str
    workload: dict[str, Any]
    space: str
    memory_limit_bytes: int | None
    epochs: int
    baseline: Side
    winner: Side
    factors: tuple[FactorRow, ...]
    naive_product: float | None
    measured_product: float | None
    end_to_end: float
    end_to_end_low: float
    end_to_end_high: float
    interaction: float | None
    interaction_text: str
    same_imgsz: bool
    waterfall: tuple[factors.WaterfallStep, ...]
    total_baseline_s: float
    total_winner_s: float
    story: tuple[StoryCheck, ...]  # the story's claims answered with this study's numbers
    recipe: tuple[StoryCheck, ...]
    points: tuple[TrialPoint, ...]
    front: tuple[TrialPoint, ...]
    missing: tuple[str, ...]  # levers still to measure (autotune report --measure)
    notes: tuple[str, ...] = ()
    train_runs: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- reading -----------------------------------------------------------------------------------------------------


def latest_study(storage: Any) -> str:
    """The most recently started study in the storage."""
    import optuna

    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    if not summaries:
        raise UserError("no study in this storage yet: run `autotune search` first")
    return max(summaries, key=lambda s: s.datetime_start or dt.datetime.min).study_name


def snapshot(storage: Any, study: str, masked_url: str) -> Snapshot:
    import optuna

    try:
        s = optuna.load_study(study_name=study, storage=storage)
    except KeyError:
        names = [x.study_name for x in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        hint = f"; studies here: {', '.join(names[-5:])}" if names else ""
        raise UserError(f"no study named {study!r} in {masked_url}{hint}") from None
    from autotune.search import _is_feasible

    trials = tuple(
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "feasible": _is_feasible(t),
            "user_attrs": dict(t.user_attrs),
        }
        for t in s.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE"
    )
    return Snapshot(study, masked_url, dict(s.user_attrs), trials)


# -- building ----------------------------------------------------------------------------------------------------


def _feasible(t: dict[str, Any]) -> bool:
    return bool(t["feasible"]) and t["user_attrs"].get("images_per_s") is not None


def _ok_ips(results: list[ProbeResult]) -> list[float]:
    return [r.stats.images_per_s for r in results if r.ok and r.stats is not None]


def _side(config: TrainConfig, results: list[ProbeResult], n_train: int, n_val: int, reference: bool = False) -> Side:
    """What was measured of one config; the reference (baseline) counts even over the memory limit: it ran."""
    ok = [r for r in results if r.stats is not None and (r.ok or (reference and r.status == "over_limit"))]
    ips = tuple(r.stats.images_per_s for r in ok)  # type: ignore[union-attr]
    rate = mean(ips) if ips else None
    last = ok[-1] if ok else None
    mem = last.memory if last else None
    val_s = None
    if mem and mem.val_batch_s and mem.val_batch:
        val_s = math.ceil(n_val / mem.val_batch) * (mem.val_batch_s + (mem.val_data_s or 0.0))
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
    )


def _claim(lever: str, before: str, after: str) -> tuple[str, float | None, str]:
    """(the story's claim as it states it, its rule applied to this change, a note where it has no rule)."""
    if lever == "imgsz":
        naive = factors.naive_imgsz(int(before), int(after))
        return f"640 -> 416 px: (640/416)^2 = {STORY['imgsz']}x; here ({before}/{after})^2", naive, ""
    if lever == "batch":
        return (
            f"batch 8-16 -> 32-48: {STORY['batch']:g}x; here {after}/{before}",
            factors.naive_batch(int(before), int(after)),
            "",
        )
    if lever == "cache":
        claim = 'disk -> RAM cache: "2x" (RAM ~500K images/s vs disk ~50K images/s)'
        if after == "ram":
            return claim, STORY["cache"], ""
        return claim, None, f"the story has no rule for {before} -> {after}"
    if lever == "workers":
        claim = 'workers 8 -> 12-16: "+50-100%", 1.5 in its product'
        if int(after) > int(before):
            return claim, STORY["workers"], ""
        return claim, None, "the story only says more workers help; the winner uses fewer"
    if lever == "source":
        claim = 'option 2, the dataset pre-resized to 416 px, "20-30 min/epoch" against option 1\'s "45-60": about 2x'
        return claim, (2.0 if after == "resized" else None), ""
    if lever == OPTIMIZER_LEVER:
        return f'SGD -> Adam: "{STORY["optimizer"]}x"; here SGD -> {after}', STORY["optimizer"], ""
    return "", None, ""


def _factor_row(p: levers.LeverProbe, lever_results: list[ProbeResult], base_ips: list[float]) -> FactorRow:
    claim, naive, note = _claim(p.lever, p.before, p.after)
    ips = _ok_ips(lever_results)
    blocked = [r for r in lever_results if r.status in ALONE_STATUSES]
    if ips and base_ips:
        f, lo, hi = factors.measured_factor(base_ips, ips)
        if p.lever == OPTIMIZER_LEVER:  # the probe ran SGD; the factor reads SGD -> the pinned optimizer
            f, lo, hi = factors.measured_factor(ips, base_ips)
        return FactorRow(p.lever, p.before, p.after, claim, naive, f, lo, hi, len(ips), "measured", note)
    if blocked:
        why = f"{blocked[-1].status}: {blocked[-1].reason}"
        return FactorRow(p.lever, p.before, p.after, claim, naive, None, None, None, 0, "not measurable alone", why)
    if lever_results:
        why = f"{lever_results[-1].status}: {lever_results[-1].reason}"
        return FactorRow(p.lever, p.before, p.after, claim, naive, None, None, None, 0, "failed", why)
    return FactorRow(p.lever, p.before, p.after, claim, naive, None, None, None, 0, "not measured yet", note)


def _interaction_text(inter: float | None, base: Side, win: Side, on_gpu: bool) -> str:
    """The interaction in words, by the bottleneck before and after."""
    if inter is None:
        return "not known: some levers are not measured alone (run `autotune report --measure`)"

    def where(s: Side) -> str:
        if s.stall_fraction is None:
            return "unknown"
        bound = "data-bound" if s.stall_fraction > STALL_THRESHOLD else "compute-bound"
        util = f", GPU busy {s.gpu_util:.0f}%" if on_gpu and s.gpu_util is not None else ""
        return f"{bound} (waits for data {s.stall_fraction:.0%} of the time{util})"

    moved = f"The baseline is {where(base)}; the winner is {where(win)}."
    same = where(base).split(" ")[0] == where(win).split(" ")[0]
    if inter < 0.9:
        why = (
            "they relieve the same bottleneck, so their gains overlap instead of multiplying"
            if same
            else "once the bottleneck moves, further gains on the old one are worth nothing"
        )
        return f"{moved} Together the levers give {inter:.2f}x of what their single factors multiply to: {why}."
    if inter > 1.1:
        return f"{moved} Together the levers give {inter:.2f}x their product: they help each other."
    return f"{moved} The single factors multiply to about the end-to-end speedup ({inter:.2f}x): little overlap."


def _story_checks(d: dict[str, Any], base: Side, win: Side, n_train: int, machine: dict[str, Any]) -> list[StoryCheck]:
    """The story's claims answered with this study's numbers (DESIGN.md "Factors")."""
    b, w = TrainConfig.from_dict(base.config), TrainConfig.from_dict(win.config)
    it_b, it_w = factors.iterations_per_epoch(n_train, b.batch), factors.iterations_per_epoch(n_train, w.batch)
    st_b = factors.optimizer_steps_per_epoch(n_train, b.batch, b.nbs)
    st_w = factors.optimizer_steps_per_epoch(n_train, w.batch, w.nbs)
    out = [
        StoryCheck(
            '640 -> 416 px takes "1554 -> ~600 iterations"',
            f"iterations per epoch = images / batch at any image size: {n_train} / {b.batch} = {it_b} at the "
            f"baseline, {n_train} / {w.batch} = {it_w} for the winner; image size changes the time per iteration, "
            "never their count.",
        ),
        StoryCheck(
            'batch 16 -> 32 is "2x"',
            f"a bigger batch means fewer iterations, but each takes longer; with nbs={b.nbs} the optimizer steps "
            f"{st_b} times per epoch at batch {b.batch} and {st_w} times at batch {w.batch}. Only measured "
            "images/s counts (the batch row of the factor table).",
        ),
    ]
    ram = machine.get("ram_bytes")
    ds = d.get("dataset") or {}
    if ram and ds.get("n_images"):
        need = int(ds["n_images"] * w.imgsz**2 * ds.get("mean_aspect", 1.0) * 3)
        out.append(
            StoryCheck(
                'switch to the RAM cache "if available GB > batch x 2"',
                f"the RAM cache holds the whole dataset resized: {ds['n_images']} images x {w.imgsz}^2 px x 3 bytes "
                f"~ {need / GiB:.2f} GiB here, against {ram / GiB:.0f} GiB of RAM (Ultralytics wants 2x margin); "
                "the batch size has nothing to do with it.",
            )
        )
    cores = machine.get("usable_cores")
    if cores:
        out.append(
            StoryCheck(
                'workers 8 -> 12-16 "chosen by RAM size"',
                f"loader workers are bounded by CPU cores ({cores} usable here), not by RAM; Ultralytics caps them "
                "at the core count. The workers row measures what they bring.",
            )
        )
    out.append(
        StoryCheck(
            f'the factors multiply to "{STORY_PRODUCT_CLAIM}x" (reality "{STORY_REALITY[0]:g}-{STORY_REALITY[1]:g}x")',
            "factors multiply only when they act on different bottlenecks; the interaction row measures how far "
            "this study's levers overlap.",
        )
    )
    return out


RECIPE = (
    StoryCheck(
        'optimizer SGD -> Adam "1.15x"',
        "Ultralytics 8.4's optimizer=auto picks MuSGD for long runs and AdamW for short ones; the optimizer changes "
        "how many epochs reach a target accuracy, not seconds per epoch. Probes measure only its step cost (the "
        "optimizer row).",
    ),
    StoryCheck(
        'early-stopping patience 15 -> 10 "-30% epochs"',
        "fewer epochs only if the run plateaus; it saves whole epochs, not seconds per epoch. Not measured by probes.",
    ),
    StoryCheck(
        'rect/quad loaders + cosine LR + close-mosaic "+5%"',
        "cosine LR and close-mosaic change convergence (accuracy per epoch); close-mosaic's last epochs also run "
        "without mosaic, slightly cheaper per image (`autotune train` predicts them apart). rect is for "
        "validation; Ultralytics' training ignores it with shuffle. Not measured by probes.",
    ),
    StoryCheck(
        "epochs",
        "total time = epochs x epoch time + one-time costs: the epoch count is the biggest lever of all, and only "
        "convergence (a validation metric) can tell how many are needed.",
    ),
)


def build(snap: Snapshot, epochs: int | None = None) -> ReportData:
    """The breakdown of one study (baseline -> winner); UserError where there is nothing to report."""
    from autotune.search import pick, record_from  # the search's own rule: the report shows the same winner

    ua = snap.user_attrs
    if not snap.trials:
        raise UserError(f"study {snap.study!r} has no finished trial yet: run `autotune search` on it first")
    if not ua.get("baseline") or not ua.get("baseline_config"):
        raise UserError(f"study {snap.study!r} has no baseline measurement: it was not made by `autotune search`")
    feasible = [t for t in snap.trials if _feasible(t)]
    if not feasible:
        raise UserError(
            f"study {snap.study!r} has no feasible trial (every one was over the limit, out of memory or failed): "
            "nothing to report; search again with a larger --vram-limit or a smaller batch range"
        )
    wl = ua.get("workload", {})
    n_train = int(wl.get("n_train") or 0) or 1
    ds = ua.get("dataset") or {}
    n_val = max(int(ds.get("n_images", 0)) - n_train, 0) if ds else max(n_train // 4, 1)
    epochs = epochs or int(wl.get("epochs") or 100)
    base_cfg = TrainConfig.from_dict(ua["baseline_config"])
    trial_results = [
        ProbeResult.from_dict(t["user_attrs"]["result"]) for t in snap.trials if t["user_attrs"].get("result")
    ]

    records = tuple(
        record_from(t["number"], t["state"], t["value"], _feasible(t), t["user_attrs"]) for t in snap.trials
    )
    target = ua.get("target_epoch_s")
    win_rec, _ = pick(records, target)
    assert win_rec is not None  # there is a feasible trial
    win_cfg = TrainConfig.from_dict(win_rec.config)

    def results(c: TrainConfig) -> list[ProbeResult]:
        return levers.results_for(c, ua, trial_results, base_cfg)

    base = _side(base_cfg, results(base_cfg), n_train, n_val, reference=True)
    win = _side(win_cfg, results(win_cfg), n_train, n_val)
    base_ips, win_ips = list(base.images_per_s), list(win.images_per_s)
    pinned = base.optimizer
    rows = [_factor_row(p, results(p.config), base_ips) for p in levers.lever_probes(base_cfg, win_cfg, pinned)]
    if not base_ips or not win_ips:
        raise UserError(
            f"study {snap.study!r} has no usable baseline measurement ({ua['baseline'].get('status')}: "
            f"{ua['baseline'].get('reason', '')[:120]}): nothing to compare the winner with"
        )
    e2e, lo, hi = factors.measured_factor(base_ips, win_ips)

    searched = [r for r in rows if r.lever in LEVERS]
    all_measured = bool(searched) and all(r.measured for r in searched)
    measured_product = factors.product([r.measured for r in searched if r.measured]) if all_measured else None
    naive = [r.naive for r in searched if r.naive is not None]
    naive_product = factors.product(naive) if naive else None
    inter = factors.interaction(e2e, [r.measured for r in searched if r.measured]) if all_measured else None
    if not searched:
        inter = None
    base_epoch = base.epoch_train_s or 0.0
    steps = (
        factors.waterfall(base_epoch, [(r.lever, r.measured) for r in searched if r.measured], e2e)
        if all_measured and base_epoch
        else []
    )

    def total(s: Side) -> float:
        return epochs * ((s.epoch_train_s or 0.0) + (s.epoch_val_s or 0.0)) + s.cache_build_s + s.resize_s

    points = tuple(_point(t) for t in snap.trials if t["user_attrs"].get("config"))
    best: dict[int, TrialPoint] = {}
    for p in points:
        if (
            p.feasible
            and p.images_per_s
            and p.images_per_s > (best[p.imgsz].images_per_s or 0 if p.imgsz in best else 0)
        ):
            best[p.imgsz] = p
    machine = ua.get("machine", {})
    notes = []
    if any(r.status == "over_limit" for r in results(base_cfg)):
        notes.append("the baseline itself is over the memory limit: it is the reference all the same")
    if len(base_ips) < 2:
        notes.append("the baseline was measured once: intervals show the lever's spread only")
    if base_cfg.imgsz != win_cfg.imgsz:
        notes.append(
            f"the winner trains at imgsz {win_cfg.imgsz}, the baseline at {base_cfg.imgsz}: a smaller image is not a "
            "free win (accuracy may drop); the speedup is labelled as such"
        )
    missing = tuple(r.lever for r in rows if r.state in ("not measured yet", "failed"))
    runs = train_runs_of(ua)
    return ReportData(
        study=snap.study,
        storage=snap.storage,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        machine=Machine.from_dict(machine).summary() if machine else "unknown machine",
        workload={**wl, "n_val": n_val},
        space=Space.from_dict(ua["space"]).describe() if ua.get("space") else "?",
        memory_limit_bytes=ua.get("memory_limit_bytes"),
        epochs=epochs,
        baseline=base,
        winner=win,
        factors=tuple(rows),
        naive_product=naive_product,
        measured_product=measured_product,
        end_to_end=e2e,
        end_to_end_low=lo,
        end_to_end_high=hi,
        interaction=inter,
        interaction_text=(
            _interaction_text(inter, base, win, base_cfg.device != "cpu")
            if searched
            else "The winner is the baseline's own configuration: no lever changed, so there is nothing to break down."
        ),
        same_imgsz=base_cfg.imgsz == win_cfg.imgsz,
        waterfall=tuple(steps),
        total_baseline_s=total(base),
        total_winner_s=total(win),
        story=tuple(_story_checks(ua, base, win, n_train, machine)),
        recipe=RECIPE,
        points=points,
        front=tuple(best[s] for s in sorted(best)),
        missing=missing,
        notes=tuple(notes),
        train_runs=runs,
    )


def train_runs_of(user_attrs: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """`autotune train` runs recorded in the study, oldest first, each epoch with its prediction (plain data)."""
    from autotune.train import RUN_ATTR, TrainRun

    runs = sorted(
        (TrainRun.from_dict(v) for k, v in user_attrs.items() if k.startswith(RUN_ATTR)),
        key=lambda r: r.sessions[0].started if r.sessions else "",
    )
    return tuple(
        {
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
        for r in runs
    )


def _point(t: dict[str, Any]) -> TrialPoint:
    ua = t["user_attrs"]
    c = ua["config"]
    return TrialPoint(
        number=t["number"],
        batch=int(c["batch"]),
        workers=int(c["workers"]),
        imgsz=int(c["imgsz"]),
        cache=str(c["cache"]),
        feasible=_feasible(t),
        status=ua.get("status", ""),
        images_per_s=ua.get("images_per_s"),
        peak_memory_bytes=ua.get("peak_memory_bytes"),
        source=str(c.get("source", "original")),
    )
