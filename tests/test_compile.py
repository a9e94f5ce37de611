"""The torch.compile lever: its one-time cost, the per-epoch gain, the break-even, and where each number goes."""

from __future__ import annotations

import json
from dataclasses import replace

import optuna
import pytest
from fakes import FakeClock, FakeProbe
from test_search import DATASET, MACHINE, WORKLOAD

from autotune.errors import UserError
from autotune.records.config import ProbeOptions, TrainConfig
from autotune.records.probe import CompileCost, ProbeResult, failed
from autotune.records.search import Space, TrialRecord
from autotune.report.compiling import compile_summaries, compile_words
from autotune.report.data import CompileSummary
from autotune.report.terminal import search_view
from autotune.search.levers import lever_probes, run_lever_probes
from autotune.search.rules import one_time_s
from autotune.search.runner import Search
from autotune.search.settings import SearchSettings
from autotune.search.space import build_space
from autotune.search.store import lever_key
from autotune.train.predict import PhaseRate, RunShape, predict_run


def summary(compile_s: float, on: float, off: float, epochs: int) -> CompileSummary:
    return CompileSummary("default", "batch=8", compile_s, on, off, epochs, True, 1, 2)


def test_break_even_is_the_compile_time_over_what_an_epoch_saves() -> None:
    # 90 s to compile, 100 s -> 97 s per epoch: 3 s saved per epoch pays 90 s back after 30 epochs
    s = summary(90.0, 97.0, 100.0, 100)
    assert s.gain == pytest.approx(100 / 97)
    assert s.break_even_epochs == pytest.approx(30.0)
    assert s.pays_off
    assert not summary(90.0, 97.0, 100.0, 20).pays_off  # a 20-epoch run does not earn it back
    # slower compiled: it never pays off, whatever the run length
    never = summary(90.0, 101.0, 100.0, 1000)
    assert never.break_even_epochs is None and not never.pays_off
    assert "never pays off" in compile_words(never)
    assert "pays off after 30 epochs: for the planned 100 it pays off" in compile_words(s)


def test_the_compile_time_is_a_one_time_cost_spread_like_a_cache_build() -> None:
    c = TrainConfig(batch=8, imgsz=128, compile="default")
    r = ProbeResult("ok", "", c.to_dict(), {}, None, None, None, None, {}, {}, {},
                    compile_cost=CompileCost("default", compile_s=80.0, recompile_s=20.0, short_batch=3))  # fmt: skip
    assert one_time_s(r) == pytest.approx(100.0)
    assert ProbeResult.from_dict(json.loads(json.dumps(r.to_dict()))).compile_cost == r.compile_cost


def test_train_predicts_the_compile_once_per_session_not_at_every_loader_restart() -> None:
    rate = PhaseRate(iter_s=1.0, step_s=0.0, batch=8, startup_s=2.0, compile_s=100.0)
    shape = RunShape(n_train=80, n_val=0, batch=8, epochs=4, warmup_epochs=0, close_mosaic=2)
    p = predict_run(shape, rate, rate, None)
    # the first epoch starts the loader and compiles; the close-mosaic epoch (3) restarts the loader only
    assert [e.one_time_s for e in p.epochs] == [102.0, 0.0, 2.0, 0.0]
    resumed = predict_run(replace(shape, start_epoch=1), rate, rate, None)
    assert resumed.epochs[0].one_time_s == 102.0  # a resumed session compiles again


def test_compile_is_a_lever_of_config_space_and_factor_table() -> None:
    with pytest.raises(UserError, match="compile must be one of"):
        TrainConfig(compile="fast")
    space = build_space(None, None, None, None, True, 2, 160, 32, compile_modes="default,off")
    assert space.compile == ("default", "off")
    assert "compile default,off" in space.describe()
    with pytest.raises(UserError, match="compile must be a list of"):
        build_space(None, None, None, None, True, 2, 160, 32, compile_modes="on")
    assert not build_space(None, None, None, None, True, 2, 160, 32).contains(TrainConfig(compile="default"))
    base, win = TrainConfig(), TrainConfig(compile="default")
    [p] = lever_probes(base, win, None)
    assert p.lever == "compile" and p.config == base.with_(compile="default")


def test_storage_keys_of_uncompiled_configs_are_what_they_were_before_the_lever() -> None:
    # a study written before compile existed finds its factor probes and keeps its space's name
    old = {"batch": 16, "workers": 8, "imgsz": 640, "cache": "none", "device": "cpu", "amp": True,
           "optimizer": "auto", "nbs": 64, "source": "original"}  # fmt: skip
    assert TrainConfig().to_dict() == old
    assert lever_key(TrainConfig()) == lever_key(TrainConfig.from_dict(old))
    assert "compile" in TrainConfig(compile="default").to_dict()
    space = Space(2, 32, 2, (128,), ("none",))
    assert "compile" not in space.to_dict()
    assert Space.from_dict(space.to_dict()) == space


def record(number: int, ips: float, compile_s: float | None = None, **config: object) -> TrialRecord:
    c = {"batch": 8, "workers": 1, "imgsz": 128, "cache": "none", **config}
    return TrialRecord(number, "COMPLETE", c, 800 / ips, ips, None, True, "ok", "", 10.0, None, compile_s=compile_s)


def test_a_compiled_trial_is_set_against_its_uncompiled_twin_where_the_study_has_one() -> None:
    records = [
        record(0, 40.0),  # uncompiled, batch 8: the twin
        record(1, 44.0, compile_s=60.0, compile="default"),  # compiled, batch 8
        record(2, 50.0, batch=16),  # uncompiled, faster, other settings
        record(3, 45.0, compile_s=70.0, compile="default", batch=24),  # compiled, no twin
    ]
    [s] = compile_summaries(records, 800, 100)
    assert s.paired and (s.on_trial, s.off_trial) == (1, 0)  # the fastest compiled trial *with* a twin
    assert s.epoch_on_s == pytest.approx(800 / 44) and s.epoch_off_s == pytest.approx(20.0)
    assert s.break_even_epochs == pytest.approx(60.0 / (20.0 - 800 / 44))
    unpaired = compile_summaries([records[2], records[3]], 800, 100)[0]
    assert not unpaired.paired and (unpaired.on_trial, unpaired.off_trial) == (3, 2)
    assert compile_summaries([records[0], records[2]], 800, 100) == ()


def compiled_probe(clock: FakeClock) -> FakeProbe:
    """Compiling makes every iteration 10% faster and costs 120 s once."""
    fake = FakeProbe(clock, seconds=20)

    def probe(c: TrainConfig, w, o, on_progress=None) -> ProbeResult:  # type: ignore[no-untyped-def]
        r = fake(c, w, o, on_progress)
        if c.compile == "off" or r.stats is None:
            return r
        stats = replace(r.stats, images_per_s=r.stats.images_per_s * 1.1)
        return replace(r, stats=stats, compile_cost=CompileCost(c.compile, compile_s=100.0, recompile_s=20.0))

    return probe  # type: ignore[return-value]


@pytest.mark.parametrize(("epochs", "compiled_wins"), [(2, False), (1000, True)])
def test_a_search_weighs_the_compile_time_against_the_planned_epochs(epochs: int, compiled_wins: bool) -> None:
    clock = FakeClock()
    space = Space(8, 8, 1, (128,), ("none",), compile=("default", "off"))
    settings = SearchSettings(budget_s=600.0, storage="sqlite:///:memory:", study="compile",
                              baseline=TrainConfig(batch=8, workers=1, imgsz=128, device="cpu"),
                              probe_options=ProbeOptions(iters=5), lever_share=0.0)  # fmt: skip
    workload = replace(WORKLOAD, epochs=epochs)
    s = Search(settings, space, workload, MACHINE, DATASET, 800, compiled_probe(clock),
               optuna.storages.InMemoryStorage(), clock=clock)  # fmt: skip
    out = s.run()
    assert out.winner is not None
    assert (out.winner.config.get("compile", "off") != "off") == compiled_wins
    [c] = compile_summaries(out.trials, 800, epochs)
    assert c.compile_s == pytest.approx(120.0) and c.gain == pytest.approx(1.1)
    text = " ".join(str(p) for p in search_view(out, None).renderables)
    assert "compile=default" in text and "compiles in 120 s once per run" in text


def test_one_slow_compiled_probe_does_not_stop_the_search_from_running_uncompiled_ones() -> None:
    clock = FakeClock()
    fake = FakeProbe(clock, seconds=20)

    timeouts: list[tuple[float, float]] = []  # (seconds left in the budget, the compiled probe's timeout)

    def probe(c: TrainConfig, w, o, on_progress=None) -> ProbeResult:  # type: ignore[no-untyped-def]
        if c.compile != "off":
            timeouts.append((850.0 - clock.t, o.timeout_s))
        r = fake(c, w, o, on_progress)
        if c.compile != "off":
            clock.t += 380  # a compiled probe: 400 s in all, as on a 2-core CPU
            return replace(r, compile_cost=CompileCost(c.compile, compile_s=160.0, recompile_s=240.0))
        return r

    space = Space(4, 32, 2, (128,), ("none",), compile=("default", "off"))
    base = TrainConfig(batch=8, workers=1, imgsz=128, device="cpu")
    settings = SearchSettings(budget_s=850.0, storage="sqlite:///:memory:", study="slow-compile", baseline=base,
                              probe_options=ProbeOptions(iters=5), lever_share=0.0,
                              seeds=(base.with_(compile="default"),))  # fmt: skip
    s = Search(settings, space, WORKLOAD, MACHINE, DATASET, 800, probe, optuna.storages.InMemoryStorage(), clock=clock)
    out = s.run()
    compiled = [r for r in out.trials if r.config.get("compile", "off") != "off" and r.state == "COMPLETE"]
    uncompiled = [r for r in out.trials if r.config.get("compile", "off") == "off" and r.state == "COMPLETE"]
    assert len(compiled) == 1  # the seed; no second one fits after it
    assert len(uncompiled) >= 5  # ~20 s each: they go on while the budget allows them
    assert out.elapsed_s <= 850
    # a compiled trial's timeout leaves the side-by-side phase its reserve (4 baseline probes of 20 s)
    assert [round(t) for _, t in timeouts] == [round(left - 80 + 60) for left, _ in timeouts]


def test_a_factor_probe_that_cannot_fit_is_left_and_the_next_ones_still_run() -> None:
    """A compiled factor probe started with less time than a compile takes only times out (353 s spent that way
    once, leaving the side-by-side phase nothing): it is left for `report --measure`; the optimizer's still runs."""
    base = TrainConfig(batch=8, workers=1, imgsz=128, device="cpu")
    todo = lever_probes(base, base.with_(compile="default"), "AdamW")
    assert [p.lever for p in todo] == ["compile", "optimizer"]
    probed: list[TrainConfig] = []
    kept: list[str] = []

    def probe(c: TrainConfig) -> ProbeResult:
        probed.append(c)
        return failed("ok", "", c, WORKLOAD)

    n = run_lever_probes(todo, WORKLOAD, probe, lambda c, lever, r: kept.append(lever), lambda c: c.compile == "off")
    assert n == 1 and kept == ["optimizer"] and probed == [base.with_(optimizer="SGD")]
