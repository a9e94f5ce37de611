"""The validation pass as the probe times it (Ultralytics' validator, split by its callbacks) and as the prediction
uses it: hand-picked times."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import optuna
import pytest

from autotune.errors import UserError
from autotune.measure.passes import split_val_pass
from autotune.records.config import TrainConfig
from autotune.records.probe import MemoryUse, ValRate, val_seconds
from autotune.search import store
from autotune.train import handover as ho
from autotune.train import run as tr
from autotune.train.predict import PhaseRate, Rates, RunShape, predict_run
from autotune.train.run import skips_validation
from tests.fakes import FakeClock, fake_trainer
from tests.test_train import CONFIG, MACHINE, fake_result, new_run, run_epoch, source


def test_split_val_pass_by_callback_times():
    # the pass starts at 10.0; batch 1 waits 0.1 s for data and computes 0.5 s, batch 2 waits 0.3 s and computes
    # 0.7 s; the pass ends 0.4 s after the last batch (statistics, summary) and took 2.0 s from the caller's clock
    marks = [
        ("on_val_start", 10.0),
        ("on_val_batch_start", 10.1),
        ("on_val_batch_end", 10.6),
        ("on_val_batch_start", 10.9),
        ("on_val_batch_end", 11.6),
        ("on_val_end", 12.0),
    ]
    split = split_val_pass(marks, total_s=2.0)
    assert split["val_batches"] == 2
    assert split["val_batch_s"] == pytest.approx(0.6)  # (0.5 + 0.7) / 2
    assert split["val_data_s"] == pytest.approx(0.2)  # (0.1 + 0.3) / 2
    assert split["val_fixed_s"] == pytest.approx(2.0 - 1.2 - 0.4)


def test_split_val_pass_refuses_a_pass_it_cannot_read():
    with pytest.raises(RuntimeError, match="cannot time it"):
        split_val_pass([("on_val_start", 0.0), ("on_val_batch_start", 0.1)], total_s=1.0)
    with pytest.raises(RuntimeError, match="ran 0 batches"):
        split_val_pass([("on_val_start", 0.0), ("on_val_end", 0.1)], total_s=1.0)


def memory(**val: float | int | None) -> MemoryUse:
    return MemoryUse(10, "pss", None, 1, 1, **val)


def test_val_rate_from_two_validator_passes():
    m = memory(
        val_batch=32,
        val_batch_s=0.6,
        val_data_s=0.2,
        val_batches=2,
        val_pass_s=2.0,
        val_fixed_s=0.4,
        val_first_pass_s=3.5,
    )
    rate = ValRate.from_rates(m)
    assert rate == ValRate(batch_s=pytest.approx(0.8), batch=32, startup_s=pytest.approx(1.5), fixed_s=0.4)
    # 100 images at 32 per batch: 4 batches x 0.8 s + 0.4 s per pass; the session's first pass 1.5 s more
    assert val_seconds(100, rate) == pytest.approx(3.6)
    assert val_seconds(100, rate, first=True) == pytest.approx(5.1)
    assert val_seconds(0, rate) is None and val_seconds(100, None) is None


def test_val_rate_from_an_older_probe_that_timed_single_batches():
    m = memory(val_batch=32, val_batch_s=0.3, val_data_s=0.1, val_first_s=1.4)
    rate = ValRate.from_rates(m)
    assert rate == ValRate(batch_s=pytest.approx(0.4), batch=32, startup_s=pytest.approx(1.0), fixed_s=0.0)
    assert val_seconds(64, rate) == pytest.approx(0.8)


# -- the validation levers: every k-th epoch, another validation batch ----------------------------------------------


def test_val_every_validates_every_kth_epoch_and_the_last():

    rate, val = PhaseRate(1.0, 0.0, 8), ValRate(batch_s=0.5, batch=16, startup_s=1.0, fixed_s=0.1)
    shape = RunShape(n_train=80, n_val=32, batch=8, epochs=7, warmup_epochs=0, close_mosaic=0, val_every=3)
    p = predict_run(shape, rate, None, val)
    # after epochs 3, 6 and 7 (the last always): 2 batches x 0.5 s + 0.1 s per pass; the first pass 1 s more
    assert [e.val_s for e in p.epochs] == [None, None, 2.1, None, None, 1.1, 1.1]
    every = predict_run(RunShape(80, 32, 8, epochs=7, warmup_epochs=0, close_mosaic=0), rate, None, val)
    assert every.total_s - p.total_s == pytest.approx(4 * 1.1)  # four passes fewer


class _Stopper:
    possible_stop = False


def _trainer(epoch: int, epochs: int = 10, stop: bool = False, possible_stop: bool = False):

    stopper = _Stopper()
    stopper.possible_stop = possible_stop
    return SimpleNamespace(epoch=epoch, epochs=epochs, stop=stop, stopper=stopper)


def test_skips_validation_only_where_ultralytics_need_not_validate():
    assert [skips_validation(_trainer(e), 3) for e in range(10)] == [
        True, True, False, True, True, False, True, True, False, False  # epochs 3, 6, 9 and the last (10)
    ]  # fmt: skip
    assert not any(skips_validation(_trainer(e), 1) for e in range(10))
    assert not skips_validation(_trainer(0, possible_stop=True), 3)  # early stopping may stop: it needs the fitness
    assert not skips_validation(_trainer(0, stop=True), 3)


def test_tracker_skips_validation_and_records_no_val(tmp_path):

    clock, events = FakeClock(), []
    run = replace(new_run(), val_every=2)
    tracker = tr.EpochTracker(run, CONFIG, lambda k, d: events.append((k, d)), lambda r: None, clock=clock,
                              load=lambda: tr.Load(0, None, 0.0))  # fmt: skip
    trainer = fake_trainer(tmp_path, clock=clock, epochs=3)
    trainer.stopper, trainer.stop = _Stopper(), False
    cb = tracker.callbacks()
    tracker.begin()
    cb["on_pretrain_routine_start"](trainer)
    cb["on_pretrain_routine_end"](trainer)
    for epoch in range(3):
        run_epoch(tracker, trainer, clock, epoch, train_s=5.0)
    records = [d["record"] for k, d in events if k == "epoch"]
    assert [r.val_s for r in records] == [None, pytest.approx(0.8), pytest.approx(0.8)]
    assert [r.predicted_val_s is None for r in records] == [True, False, False]
    assert records[0].metrics == {}


def test_val_batch_and_val_every_are_checked_and_kept(tmp_path):

    h = ho.make_handover(source(), ho.Recipe(val_every=5, val_batch=64), 800, 3, MACHINE)
    assert (h.val_every, h.val_batch, h.val_probe_needed) == (5, 64, True)
    assert not ho.make_handover(source(), ho.Recipe(val_batch=32), 800, 3, MACHINE).val_probe_needed  # 2 x 16
    with pytest.raises(UserError, match="val-every must be a whole number from 1"):
        ho.make_handover(source(), ho.Recipe(val_every=0), 800, 3, MACHINE)
    with pytest.raises(UserError, match="val-batch must be a whole number"):
        ho.make_handover(source(), ho.Recipe(val_batch=0), 800, 3, MACHINE)
    with pytest.raises(UserError, match="needs validation on"):
        ho.make_handover(source(), ho.Recipe(val_every=2, extra={"val": False}), 800, 3, MACHINE)


def test_a_run_at_another_validation_batch_measures_it_once(tmp_path):
    """--val-batch other than 2x batch: one probe at that batch, kept in the study, whose rate the prediction uses."""

    st = store.create(optuna.storages.InMemoryStorage(), "s", None, None)
    src = source(st=st)
    h = ho.make_handover(src, ho.Recipe(val_batch=64), 800, 3, MACHINE)
    asked: list[tuple[int | None, str]] = []

    def probe(config: TrainConfig, workload, options, what):
        asked.append((options.val_batch, what))
        r = fake_result(config)
        mem = r.memory.__class__(**{**r.memory.__dict__, "val_batch": options.val_batch or 2 * config.batch})
        return r.__class__(**{**r.__dict__, "memory": mem})

    phases = ho.gather_phases(h, src, MACHINE, True, probe, lambda s: None)
    assert [a[0] for a in asked if a[0]] == [64] and "validation at batch 64" in asked[-1][1]
    assert Rates.from_results(phases.get("mosaic"), phases.get("no_mosaic"), phases[ho.VALIDATION]).val.batch == 64
    asked.clear()
    again = ho.gather_phases(h, src, MACHINE, True, probe, lambda s: None)  # kept in the study: not probed again
    assert asked == [] and again[ho.VALIDATION].memory.val_batch == 64


def test_validation_summary_for_the_report():
    from autotune.report.data import Side
    from autotune.report.validation import validation_summary, validation_words

    side = Side({}, (10.0,), 0.1, None, epoch_train_s=30.0, epoch_val_s=10.0, cache_build_s=0.0, resize_s=0.0,
                optimizer="AdamW", step_s=0.1, accumulate=4, val_batch=32)  # fmt: skip
    v = validation_summary(side, epochs=20)
    assert v is not None and v.share == pytest.approx(0.25)  # 10 s of 40
    # every epoch: 20 + best.pt = 21 passes; every 2: 10 + 1; every 5: 4 + 1; every 10: 2 + 1
    assert [(o.every, o.passes, o.val_s, o.saved_s) for o in v.options] == [
        (1, 21, 210.0, 0.0), (2, 11, 110.0, 100.0), (5, 5, 50.0, 160.0), (10, 3, 30.0, 180.0)
    ]  # fmt: skip
    words = validation_words(v)
    assert words[0].startswith("one validation pass at batch 32 takes 10.0 s (25% of an epoch")
    assert "--val-every 5: 5 passes in 20 epochs (50 s), saves 160 s" in words
    short = validation_summary(side, epochs=3)  # every 5 or 10 would validate only the last: as val=False
    assert short is not None and [o.every for o in short.options] == [1, 2]
    assert validation_summary(replace(side, epoch_val_s=None), epochs=20) is None


def test_the_median_warm_pass_is_kept():
    from autotune.measure.passes import median_pass

    a, b, c = (0.5, [("a", 0.0)]), (0.9, [("b", 0.0)]), (0.45, [("c", 0.0)])
    assert median_pass([a, b, c]) == a  # 0.45, 0.5, 0.9: one slow pass (disturbed) does not move it
    assert median_pass([a]) == a
    with pytest.raises(ValueError):
        median_pass([])
