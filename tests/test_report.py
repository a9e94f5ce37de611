"""The report: lever probes, factor rows and interaction from a hand-made study, its files, its bad inputs."""

import json
import math
import re
from dataclasses import replace

import optuna
import pytest
from fakes import FakeClock, FakeProbe
from test_search import WORKLOAD, make_search

from autotune.errors import UserError
from autotune.measure.stats import summarize
from autotune.records.config import TrainConfig, Workload
from autotune.records.machine import Machine
from autotune.records.probe import MemoryUse, ProbeResult, failed
from autotune.records.search import DatasetSize, Space, StudyMeta, StudySnapshot, TrialRecord
from autotune.report import documents as reportdoc
from autotune.report.build import build
from autotune.search import levers
from autotune.search.store import StudyStore

BASE = TrainConfig(batch=16, workers=2, imgsz=128, cache="none", device="cpu")
WIN = TrainConfig(batch=32, workers=2, imgsz=96, cache="ram", device="cpu")
GIB = 2**30


def result(c: TrainConfig, ips: float, status: str = "ok", created: str = "", stall: float = 0.0) -> ProbeResult:
    if status != "ok" and ips <= 0:
        return failed(status, "CUDA out of memory", c, WORKLOAD)
    per_iter = c.batch / ips
    stats = summarize([stall * per_iter] * 10, [per_iter * (1 - stall)] * 10, [0.0], c.batch, c.accumulate)
    return ProbeResult(
        status=status, reason="", requested=c.to_dict(), effective={"optimizer": "AdamW"}, stats=stats,
        memory=MemoryUse(GIB, "pss", None, c.workers, c.workers, val_batch=2 * c.batch, val_batch_s=0.5),
        cache=None, files=None, workload={}, subset={}, timings={}, created=created or f"t{ips}", duration_s=30.0,
    )  # fmt: skip


def trial(number: int, r: ProbeResult, n_train: int = 800) -> TrialRecord:
    ok = r.ok and r.stats is not None
    ips = r.stats.images_per_s if ok else None
    return TrialRecord(
        number=number, state="COMPLETE", config=r.requested, epoch_s=n_train / ips if ips else None,
        images_per_s=ips, sec_per_iter=None, feasible=ok, status=r.status, reason=r.reason, duration_s=30.0,
        peak_memory_bytes=GIB, memory_wall=r.status == "oom",
    )  # fmt: skip


META = StudyMeta(
    machine=Machine("Test CPU", 2, 24 * GIB, (), ""),
    machine_id=None,
    workload=Workload("/d/data.yaml", "yolo11n.yaml", 10),
    n_train=800,
    baseline=BASE,
    space=Space(4, 32, 2, (96, 128), ("none", "ram")),
    memory_limit_bytes=4 * GIB,
    dataset=DatasetSize(1000, 1280 * 720, 0.5625),
)


def snapshot(lever_ips: dict[str, float], winner_ips: float = 45.0, base_end: float = 21.0) -> StudySnapshot:
    """Baseline 20 (and 21 at the end), winner 45; each lever alone as given (missing: not measured)."""
    base = result(BASE, 20.0, created="b0")
    lever_results = {}
    for p in levers.lever_probes(BASE, WIN, "AdamW"):
        if p.lever in lever_ips:
            ips = lever_ips[p.lever]
            r = result(p.config, ips) if ips > 0 else failed("oom", "out of memory", p.config, WORKLOAD)
            lever_results[p.config] = (r,)
    results = {0: base, 1: result(WIN, winner_ips), 2: result(BASE.with_(batch=64), 0, "oom")}
    return StudySnapshot(
        name="s",
        storage="sqlite:///x",
        meta=META,
        trials=tuple(trial(n, r) for n, r in results.items()),
        results=results,
        baseline=base,
        baseline_end=result(BASE, base_end, created="b1"),
        lever_results=lever_results,
        winner=1,
    )


def test_lever_probes_change_one_lever_each():
    probes = levers.lever_probes(BASE, WIN, "AdamW")
    assert [p.lever for p in probes] == ["imgsz", "batch", "cache", "optimizer"]  # workers equal: no probe
    assert probes[0].config == BASE.with_(imgsz=96)
    assert probes[1].config == BASE.with_(batch=32)
    assert probes[3].config == BASE.with_(optimizer="SGD")
    assert [p.lever for p in levers.lever_probes(BASE, WIN, "SGD")][-1] == "cache"  # SGD pinned: nothing to compare


def test_factor_rows_interaction_and_waterfall():
    d = build(snapshot({"imgsz": 36.0, "batch": 24.0, "cache": 30.0, "optimizer": 20.5}))
    rows = {r.lever: r for r in d.factors}
    base_mean = 20.5  # 20 and 21
    assert rows["imgsz"].measured == pytest.approx(36 / base_mean)
    assert rows["imgsz"].naive == pytest.approx((128 / 96) ** 2)
    # the lever was measured once: its interval is the extreme ratios widened to the 10% noise floor (log space)
    f = 36 / base_mean
    assert (rows["imgsz"].low, rows["imgsz"].high) == (pytest.approx(f / 1.1), pytest.approx(f * 1.1))
    assert rows["imgsz"].interval == "noise floor +-10%"
    assert rows["batch"].naive == 2.0 and rows["cache"].naive == 2.0
    assert rows["optimizer"].indistinguishable_from_one  # 20.5 sits inside 20..21
    assert rows["optimizer"].measured == pytest.approx(base_mean / 20.5)  # SGD -> AdamW: pinned over SGD
    assert d.end_to_end == pytest.approx(45 / base_mean)
    prod = (36 / base_mean) * (24 / base_mean) * (30 / base_mean)  # the optimizer is not a searched lever
    assert d.measured_product == pytest.approx(prod)
    assert d.interaction == pytest.approx((45 / base_mean) / prod)
    assert d.naive_product == pytest.approx((128 / 96) ** 2 * 2 * 2)
    assert d.interaction < 0.9 and "same bottleneck" in d.interaction_text
    # intervals propagated in log space: three factors at +-10% each, the end to end at +-10%
    lo, hi = d.interaction_interval
    width = math.hypot(math.log(1.1), math.sqrt(3) * math.log(1.1))
    assert (lo, hi) == (pytest.approx(d.interaction / math.exp(width)), pytest.approx(d.interaction * math.exp(width)))
    assert hi < 1  # excludes 1: the report may explain it
    assert [s.label for s in d.waterfall] == ["imgsz", "batch", "cache", "interaction"]
    assert d.waterfall[0].start_s == pytest.approx(800 / base_mean)
    assert d.waterfall[-1].end_s == pytest.approx(800 / 45)
    assert not d.same_imgsz and any("not a free win" in n for n in d.notes)
    assert d.missing == ()


def test_a_lever_over_the_limit_is_not_measurable_alone_and_missing_ones_are_listed():
    d = build(snapshot({"imgsz": 36.0, "batch": 0}))
    rows = {r.lever: r for r in d.factors}
    assert rows["batch"].state == "not measurable alone" and rows["batch"].measured is None
    assert rows["cache"].state == "not measured yet"
    assert d.interaction is None and d.waterfall == () and "--measure" in d.interaction_text
    assert set(d.missing) == {"cache", "optimizer"}


def test_story_checks_use_the_studys_numbers():
    d = build(snapshot({}))
    text = " ".join(c.verdict for c in d.story)
    assert "800 / 16 = 50" in text and "800 / 32 = 25" in text  # iterations = images / batch at any imgsz
    assert "2 usable here" in text


def test_total_time_counts_validation_and_epochs():
    d = build(snapshot({}), epochs=3)
    b = d.baseline
    assert b.epoch_train_s == pytest.approx(800 / 20.5)
    assert b.epoch_val_s == pytest.approx(7 * 0.5)  # 200 val images in batches of 32: 7 batches of 0.5 s
    assert d.total_baseline_s == pytest.approx(3 * (800 / 20.5 + 3.5))


def test_bad_studies_are_user_errors():
    with pytest.raises(UserError, match="no finished trial"):
        build(replace(snapshot({}), trials=(), winner=None))
    s = snapshot({})
    only_oom = replace(s, trials=(s.trials[2],), winner=None)
    with pytest.raises(UserError, match="no feasible trial"):
        build(only_oom)


def test_report_files_are_self_contained(tmp_path):
    d = build(snapshot({"imgsz": 36.0, "batch": 24.0, "cache": 30.0, "optimizer": 20.5}))
    written = reportdoc.write(d, tmp_path, ["md", "html", "json"])
    names = {p.name for p in written}
    assert {"waterfall.png", "factors.png", "batch.png", "front.png", "report.md", "report.html"} <= names
    md = (tmp_path / "report.md").read_text()
    assert "| imgsz | 128 -> 96 |" in md and "not a free win" in md
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == sum(1 for n in names if n.endswith(".png"))
    assert not re.search(r"(src|href)=\"https?://", html)  # opens with no network
    assert json.loads((tmp_path / "report.json").read_text())["end_to_end"] == pytest.approx(45 / 20.5)
    info = reportdoc.throughput_info(d)
    assert info.failed == {128: [64]} and info.limit_gib == 4.0


def test_search_measures_levers_at_the_end_and_report_measure_finds_none_missing():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    probe = FakeProbe(clock, seconds=10)
    search = make_search(storage, clock, probe, budget_s=400)
    search.s = search.s.__class__(**{**search.s.__dict__, "lever_share": 0.3})
    out = search.run()
    assert out.winner is not None
    study = optuna.load_study(study_name="test", storage=storage)
    keys = list(StudyStore(study).snapshot("x").lever_results)
    win = TrainConfig.from_dict(out.winner.config)
    changed = [lv for lv in levers.LEVERS if getattr(win, lv) != getattr(search.s.baseline, lv)]
    assert len(keys) >= 1 and len(keys) <= len(changed)
    assert search.measure_levers(out.baseline) <= len(changed) - len(keys)  # nothing measured twice


def test_measurements_of_a_config_are_counted_once_and_failures_are_retried():
    base = result(BASE, 20.0, created="b0")
    snap = replace(snapshot({}), results={0: base}, baseline=base, baseline_end=result(BASE, 21.0, created="b1"))
    # the seeded baseline trial reuses the reference probe: one measurement, not two
    found = levers.results_for(BASE, snap)
    assert sorted(r.stats.images_per_s for r in found) == pytest.approx([20.0, 21.0])
    p = levers.lever_probes(BASE, BASE.with_(cache="ram"), None)[0]
    assert levers.still_missing([p], snap) == [p]
    crashed = failed("crashed", "segfault", p.config, WORKLOAD)
    snap = replace(snap, lever_results={p.config: (crashed,)})
    assert levers.still_missing([p], snap) == [p]  # a crash says nothing about the config
    oom = failed("oom", "out of memory", p.config, WORKLOAD)
    snap = replace(snap, lever_results={p.config: (crashed, oom)})
    assert levers.still_missing([p], snap, repeats=3) == []  # cannot change alone: never retried


def test_train_runs_show_predicted_against_actual(tmp_path):
    from autotune.records.run import EpochRecord, Session, TrainRun

    records = (
        EpochRecord(1, 2, "warm-up, no mosaic", False, train_s=44.0, val_s=3.0, other_s=0.5, images=800,
                    predicted_train_s=40.0, predicted_val_s=2.5),
        EpochRecord(2, 2, "no mosaic", False, train_s=39.0, val_s=3.0, other_s=0.5, images=800,
                    predicted_train_s=40.0, predicted_val_s=2.5),
    )  # fmt: skip
    run = TrainRun("r1", "study s, trial 1", "s", 1, None, WIN.to_dict(), {}, "AdamW", {}, {}, epochs=2,
                   records=records, sessions=(Session("2026-11-28T00:00:00", status="finished"),))  # fmt: skip
    d = build(replace(snapshot({}), train_runs=(run,)))
    (r,) = d.train_runs
    assert [e["train_error"] for e in r["epochs"]] == [pytest.approx(0.10), pytest.approx(-0.025)]
    assert r["predicted_s"] == pytest.approx(85.0)
    reportdoc.write(d, tmp_path, ["md"])
    md = (tmp_path / "report.md").read_text()
    assert "| r1 | 1 | warm-up, no mosaic | 40.0 s | 44.0 s | +10.0% |" in md
