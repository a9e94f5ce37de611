"""autotune train: the settings hand-over, the phase prediction with hand-picked numbers, the epoch tracker with a
fake trainer and clock, Ctrl-C and resume through the CLI with a fake Ultralytics, and bad input."""

import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import optuna
import pytest
from conftest import make_dataset
from fakes import FakeClock, fake_trainer
from typer.testing import CliRunner

from autotune.cli import app
from autotune.errors import UserError
from autotune.measure.machine import fingerprint
from autotune.measure.optimizer import auto_optimizer, optimizer_args
from autotune.measure.stats import projected_epoch_s, summarize
from autotune.records.config import TrainConfig, Workload
from autotune.records.machine import Machine
from autotune.records.probe import CacheCost, MemoryUse, ProbeResult
from autotune.records.run import Session
from autotune.records.search import Space, StudyMeta
from autotune.search import profiles, store
from autotune.train import handover as ho
from autotune.train import run as tr
from autotune.train.predict import PhaseRate, Rates, RunShape, ValRate, optimizer_steps, predict_run, startup_excess

runner = CliRunner()
MACHINE = Machine("Test CPU", 2, 24 * 2**30, (), "host")
CONFIG = TrainConfig(batch=16, workers=2, imgsz=96, cache="ram", device="cpu")


def fake_result(config=CONFIG, iter_s=0.5, step_s=0.2, n_train=800, optimizer="AdamW", mosaic=True, epochs=100):
    """A probe result with hand-picked times: 3 warm-up iterations of 1.5 s, then 10 of iter_s."""
    waits, computes = [0.5] * 3 + [0.1] * 10, [1.0] * 3 + [iter_s - 0.1] * 10
    stats = summarize(waits[3:], computes[3:], [step_s] * 3, config.batch, config.accumulate)
    return ProbeResult(
        status="ok",
        reason="",
        requested=config.to_dict(),
        effective={"optimizer": optimizer, "mosaic": mosaic, "batch": config.batch},
        stats=stats,
        memory=MemoryUse(
            100, "pss", None, 2, 2, val_batch=2 * config.batch, val_batch_s=0.3, val_data_s=0.1, val_first_s=1.4
        ),
        cache=CacheCost(mode=config.cache, full_s=12.0) if config.cache != "none" else CacheCost(mode="none"),
        files=None,
        workload={"data": "/d/data.yaml", "model": "yolo11n.yaml", "epochs": epochs, "n_train": n_train, "nc": 3},
        subset={},
        timings={"data_wait_s": waits, "compute_s": computes, "warmup": 3},
        options={"iters": 10, "warmup_max": 15, "mosaic": mosaic},
    )


# -- prediction: hand-picked numbers ------------------------------------------------------------------------------


def _ultralytics_steps(nb, epochs, nbs, batch, warmup_epochs, start=0):
    """Ultralytics 8.4's loop (BaseTrainer._do_train) reduced to when it steps, with numpy as it uses it."""
    acc0 = min(max(round(nbs / batch), 1), nb * epochs)
    w = min(warmup_epochs, max(epochs - 1, 0))
    nw = round(w * nb) if w > 0 else 0
    last, acc, out = -1, acc0, []
    for epoch in range(start, epochs):
        steps = 0
        for i in range(nb):
            ni = i + nb * epoch
            if nw and ni <= nw:
                acc = max(1, int(np.interp(ni, [0, nw], [1, acc0]).round()))
            if ni - last >= acc:
                steps += 1
                last = ni
        out.append(steps)
    return out


def test_optimizer_steps_by_hand_warm_up_steps_more_often():
    # 160 images at batch 16: 10 iterations per epoch, accumulate 4; warm-up of 1 epoch ramps 1 -> 4:
    # steps at iterations 0, 1, 3, 5, 8 (epoch 1), 12, 16 (epoch 2), 20, 24, 28 (epoch 3)
    shape = RunShape(n_train=160, n_val=40, batch=16, epochs=3, warmup_epochs=1, close_mosaic=0)
    assert optimizer_steps(shape) == [5, 2, 3]
    # a resumed session starts counting afresh, as Ultralytics' last_opt_step = -1 does
    assert optimizer_steps(RunShape(160, 40, 16, 3, warmup_epochs=1, start_epoch=1)) == [3, 2]


@pytest.mark.parametrize(
    ("n", "batch", "epochs", "warmup"), [(800, 16, 20, 3.0), (123, 5, 7, 2.5), (64, 64, 4, 3.0), (1000, 2, 3, 0.0)]
)
def test_optimizer_steps_match_ultralytics_loop(n, batch, epochs, warmup):
    shape = RunShape(n_train=n, n_val=10, batch=batch, epochs=epochs, warmup_epochs=warmup)
    assert optimizer_steps(shape) == _ultralytics_steps(shape.iterations, epochs, 64, batch, warmup)
    resumed = RunShape(n_train=n, n_val=10, batch=batch, epochs=epochs, warmup_epochs=warmup, start_epoch=1)
    assert optimizer_steps(resumed) == _ultralytics_steps(shape.iterations, epochs, 64, batch, warmup, start=1)


def test_predict_run_phases_by_hand():
    mosaic = PhaseRate(iter_s=0.5, step_s=0.2, batch=16, startup_s=3.0)
    no_mosaic = PhaseRate(iter_s=0.3, step_s=0.2, batch=16, startup_s=1.0)
    val = ValRate(batch_s=0.4, batch=32, startup_s=1.0)
    shape = RunShape(n_train=160, n_val=40, batch=16, epochs=3, warmup_epochs=1, close_mosaic=1)
    p = predict_run(shape, mosaic, no_mosaic, val, cache_build_s=5.0)
    e1, e2, e3 = p.epochs
    # epoch 1: warm-up, mosaic: 10 iterations x 0.5 s + 5 steps x 0.2 s + loader start-up 3 s
    assert (e1.phase, e1.steps, e1.train_s, e1.one_time_s) == ("warm-up, mosaic", 5, pytest.approx(9.0), 3.0)
    # epoch 2: mosaic, 2 steps, no one-time cost
    assert (e2.phase, e2.steps, e2.train_s) == ("mosaic", 2, pytest.approx(5.4))
    # epoch 3: the last close_mosaic epoch: no-mosaic rate, 3 steps, and its loader restart (1 s)
    assert (e3.phase, e3.mosaic, e3.train_s) == ("no mosaic", False, pytest.approx(3.0 + 0.6 + 1.0))
    # validation: ceil(40 / 32) = 2 batches x 0.4 s, every epoch and once more for best.pt; the first one also
    # starts the validation loader's workers (1 s)
    assert [e.val_s for e in p.epochs] == [pytest.approx(1.8), pytest.approx(0.8), pytest.approx(0.8)]
    assert p.final_val_s == pytest.approx(0.8)
    assert p.setup_s == 5.0
    assert p.total_s == pytest.approx(5 + 10.8 + 6.2 + 5.4 + 0.8)
    assert p.notes == ()
    assert Rates(mosaic, no_mosaic, val, 5.0).predict(shape) == p


def test_predict_run_defaults_warm_up_three_epochs_close_mosaic_ten():
    rate = PhaseRate(iter_s=1.0, step_s=0.5, batch=16)
    shape = RunShape(n_train=1600, n_val=0, batch=16, epochs=20)  # Ultralytics' defaults: 3 warm-up, 10 closed
    p = predict_run(shape, rate, rate, None)
    assert [e.phase for e in p.epochs[:4]] == ["warm-up, mosaic"] * 3 + ["mosaic"]
    assert [e.mosaic for e in p.epochs] == [True] * 10 + [False] * 10
    assert p.epochs[0].steps > p.epochs[5].steps == 25  # 100 iterations / accumulate 4
    assert all(e.val_s is None for e in p.epochs) and "no validation batch" in p.notes[0]


def test_steady_epoch_matches_the_search_objective():
    """A steady mosaic epoch (no warm-up, whole accumulation periods) is the search's projected epoch time."""
    r = fake_result(n_train=800)  # 800 images at batch 16: 50 iterations, accumulate 4 -> 12 or 13 steps
    rate = PhaseRate.from_result(r)
    shape = RunShape(n_train=800, n_val=200, batch=16, epochs=10, warmup_epochs=0, close_mosaic=0)
    p = predict_run(shape, rate, None, ValRate.from_result(r))
    steady = p.epochs[4]
    assert steady.train_s == pytest.approx(projected_epoch_s(800, r.stats.images_per_s), rel=0.02)
    assert steady.val_s == pytest.approx(math.ceil(200 / 32) * 0.4)
    assert p.epochs[0].val_s == pytest.approx(math.ceil(200 / 32) * 0.4 + 1.0)


def test_rates_from_results_startup_and_missing_phase():
    r = fake_result()
    # warm-up iterations took 1.5 s each against 0.5 s steady: 3 x 1.0 s extra
    assert startup_excess(r.timings, 0.5) == pytest.approx(3.0)
    rates = Rates.from_results(r, None)
    assert rates.mosaic == PhaseRate(iter_s=pytest.approx(0.5), step_s=0.2, batch=16, startup_s=pytest.approx(3.0))
    assert rates.val == ValRate(batch_s=pytest.approx(0.4), batch=32, startup_s=pytest.approx(1.0))
    assert rates.cache_build_s == 12.0
    assert Rates.from_dict(json.loads(json.dumps(rates.to_dict()))) == rates
    p = rates.predict(RunShape(n_train=800, n_val=200, batch=16, epochs=12))
    assert any("no no-mosaic measurement" in n for n in p.notes)
    assert p.epochs[-1].train_s > 0 and not p.epochs[-1].mosaic
    assert Rates(None, None, None).predict(RunShape(10, 1, 2, 1)) is None


def test_val_false_validates_only_the_last_epoch_and_resume_starts_later():
    rate, val = PhaseRate(1.0, 0.1, 8, startup_s=2.0), ValRate(0.5, 16, startup_s=0.5)
    p = predict_run(RunShape(80, 32, 8, epochs=4, val=False, close_mosaic=0, start_epoch=2), rate, None, val)
    assert [e.epoch for e in p.epochs] == [3, 4]
    assert [e.val_s for e in p.epochs] == [None, 1.5]  # the session's first validation starts the loader
    assert p.epochs[0].one_time_s == 2.0 and p.epochs[1].one_time_s == 0.0  # the session's first epoch


# -- the settings hand-over --------------------------------------------------------------------------------------


def source(result=None, machine=MACHINE, epochs=100, st=None, config=CONFIG):
    w = Workload(data="/d/data.yaml", model="yolo11n.yaml", epochs=epochs)
    return ho.Source("study s, trial 0", config, w, result or fake_result(config), machine, store=st, trial=0)


def test_what_was_measured_is_what_trains():
    src = source()
    h = ho.make_handover(src, ho.Recipe(epochs=50), 800, 3, MACHINE)
    a = h.args
    # every measured setting, exactly as the profile writes it and the probe trained it
    c = src.config
    assert (a["batch"], a["workers"], a["imgsz"], a["device"], a["amp"], a["nbs"]) == (
        c.batch, c.workers, c.imgsz, c.device, c.amp, c.nbs
    )  # fmt: skip
    assert a["cache"] == "ram"
    assert {k: a[k] for k in ("model", "data")} == {"model": "yolo11n.yaml", "data": "/d/data.yaml"}
    # the optimizer as the probe pinned it for the study's planned epochs (measure.py calls the same function)
    probe_opt, _ = optimizer_args(c, 800, 3, 100)
    assert {k: a[k] for k in probe_opt} == probe_opt and a["optimizer"] == "AdamW"
    assert a["epochs"] == 50 and a["plots"] is False
    assert h.probe_config == c and h.probe_epochs == 100  # the winner's own probe measures this run
    assert ho.stored_phase(src, h, "mosaic", MACHINE) is src.measured
    from ultralytics.cfg import get_cfg

    get_cfg(overrides=a)  # Ultralytics accepts every argument


def test_optimizer_args_pin_auto_as_ultralytics_resolves_it():
    args, why = optimizer_args(CONFIG, 800, 3, 100)
    lr = round(0.002 * 5 / (4 + 3), 6)  # Ultralytics' lr0 fit for AdamW
    assert args == {"optimizer": "AdamW", "lr0": lr, "momentum": 0.9, "warmup_bias_lr": 0.0} and "auto -> AdamW" in why
    assert optimizer_args(CONFIG.with_(optimizer="SGD"), 800, 3, 100) == ({"optimizer": "SGD"}, "as requested")


def test_search_stores_its_pick_for_train():
    from fakes import FakeProbe
    from test_search import make_search

    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    out = make_search(storage, clock, FakeProbe(clock), budget_s=200).run()
    st = store.load(storage, "test")
    assert st.winner_number()[0] == out.winner.number
    assert ho.from_study(st).trial == out.winner.number


def test_epochs_that_flip_auto_keep_the_measured_optimizer_pinned():
    n = 200_000  # 200k images at nbs 64: 3125 iterations/epoch; 100 epochs -> MuSGD, 3 epochs -> AdamW
    assert auto_optimizer(n, 16, 64, 100, 3).name == "MuSGD"
    src = source(fake_result(optimizer="AdamW", n_train=n), epochs=3)
    h = ho.make_handover(src, ho.Recipe(epochs=100), n, 3, MACHINE)
    assert h.optimizer == "AdamW" and h.args["optimizer"] == "AdamW"
    assert any("would pick MuSGD" in note for note in h.notes)
    assert h.probe_config == src.config  # still the measured request: its measurement holds


def test_optimizer_auto_or_another_one_is_measured_first():
    n = 200_000
    src = source(fake_result(optimizer="AdamW", n_train=n), epochs=3)
    h = ho.make_handover(src, ho.Recipe(epochs=100, optimizer="auto"), n, 3, MACHINE)
    assert h.optimizer == "MuSGD" and h.args["optimizer"] == "MuSGD" and h.args["lr0"] == 0.01
    assert h.probe_config.optimizer == "MuSGD" and ho.stored_phase(src, h, "mosaic", MACHINE) is None
    assert any("measured first" in note for note in h.notes)
    same = ho.make_handover(src, ho.Recipe(optimizer="adamw"), n, 3, MACHINE)  # what was measured: no new probe
    assert same.optimizer == "AdamW" and same.probe_config == src.config
    with pytest.raises(UserError, match="unknown optimizer"):
        ho.make_handover(src, ho.Recipe(optimizer="Lion"), n, 3, MACHINE)


def test_recipe_and_pass_through():
    extra = ho.parse_extra(["lr0=0.005", "rect=True", "warmup_epochs=1"])
    assert extra == {"lr0": 0.005, "rect": True, "warmup_epochs": 1}
    h = ho.make_handover(source(), ho.Recipe(patience=10, cos_lr=True, close_mosaic=5, extra=extra), 800, 3, MACHINE)
    assert (h.args["patience"], h.args["cos_lr"], h.args["close_mosaic"], h.args["lr0"]) == (10, True, 5, 0.005)
    assert any(w.startswith("rect=True changes what an iteration costs") for w in h.warnings)
    assert ho.needed_phases(h) == ["mosaic", "no_mosaic"]
    h2 = ho.make_handover(source(), ho.Recipe(epochs=2), 800, 3, MACHINE)  # 2 epochs, close_mosaic 10: none mosaic
    assert ho.needed_phases(h2) == ["no_mosaic"]
    h3 = ho.make_handover(source(), ho.Recipe(epochs=2, close_mosaic=0), 800, 3, MACHINE)
    assert ho.needed_phases(h3) == ["mosaic"]


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["batch=32"], "batch= cannot be changed by autotune train: it was measured"),
        (["imgsz=640"], "it was measured"),
        (["workers=8"], "it was measured"),
        (["cache=disk"], "it was measured"),
        (["epochs=5"], "use --epochs"),
        (["lr00=0.1"], "not an Ultralytics setting (did you mean lr0?)"),
        (["--bogus"], "no such option: --bogus"),
        (["lr0"], "key=value"),
    ],
)
def test_pass_through_refusals(items, expected):
    with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        ho.parse_extra(items)


def test_ultralytics_value_checks_and_bad_recipe():
    with pytest.raises(UserError, match="lr0"):
        ho.make_handover(source(), ho.Recipe(extra={"lr0": "fast"}), 800, 3, MACHINE)
    for recipe, text in ((ho.Recipe(epochs=0), "epochs"), (ho.Recipe(patience=-1), "patience"),
                         (ho.Recipe(close_mosaic=-2), "close-mosaic")):  # fmt: skip
        with pytest.raises(UserError, match=text):
            ho.make_handover(source(), recipe, 800, 3, MACHINE)


def test_other_hardware_is_a_warning_with_both_fingerprints_and_its_phases_are_measured_here():
    other = Machine("Other CPU", 64, 512 * 2**30, (), "big")
    src = source(machine=other)
    h = ho.make_handover(src, ho.Recipe(), 800, 3, MACHINE)
    (w,) = h.warnings
    assert other.summary() in w and MACHINE.summary() in w
    assert ho.stored_phase(src, h, "mosaic", MACHINE) is None  # the other machine's numbers do not predict this one


def _study(storage, name="s", data="/d/data.yaml", machine=MACHINE, result=None, n_train=800, config=CONFIG):
    """A study as the search leaves it, written through the store: batch 8 (30 s/epoch), then 16 (20 s/epoch)."""
    st = store.create(storage, name, optuna.samplers.RandomSampler(seed=0), None)
    st.write_meta(StudyMeta(
        machine=machine, machine_id=machine.identity_hash(), n_train=n_train, baseline=config,
        workload=Workload(data=data, model="yolo11n.yaml", epochs=100),
        space=Space(2, 32, 2, (config.imgsz,), (config.cache,)),
    ))  # fmt: skip
    result = result or fake_result()
    for batch, value in ((8, 30.0), (16, 20.0)):
        trial_config = config.with_(batch=batch)
        t = st.study.ask({"batch": optuna.distributions.IntDistribution(2, 32)})
        st.start_trial(t, trial_config, "test")
        st.set_trial_result(t, replace(result, requested=trial_config.to_dict()), None)
        st.set_trial_rates(t, n_train / value, 0.5, 0.0)
        st.set_constraints(t, 0.0, 0.0)
        st.study.tell(t, value)
    return st


def test_winner_latest_study_and_phases_kept_in_the_study():
    storage = optuna.storages.InMemoryStorage()
    with pytest.raises(UserError, match="run `autotune search` first"):
        store.latest_study_name(storage)
    _study(storage, "old")
    study = _study(storage, "new")
    assert store.latest_study_name(storage) == "new"
    src = ho.from_study(study)
    assert src.config.batch == 16 and src.trial == 1  # the fastest feasible trial
    assert src.notes == ()
    slow, fast = fake_result(iter_s=1.0), fake_result(iter_s=0.5)  # the machine got faster during the search
    study.set_reference(slow)
    study.set_reference(fast, end=True)
    drift = fast.stats.images_per_s / slow.stats.images_per_s - 1
    assert ho.baseline_drift(slow, fast) == pytest.approx(drift)
    assert f"{drift:+.0%} images/s" in ho.from_study(study).notes[0]
    h = ho.make_handover(src, ho.Recipe(epochs=12), 800, 3, MACHINE)
    calls = []

    def probe_fn(config, workload, options, what):
        calls.append((config, workload.epochs, options.mosaic))
        return fake_result(config, iter_s=0.3, mosaic=options.mosaic)

    notes = []
    phases = ho.gather_phases(h, src, MACHINE, True, probe_fn, notes.append)
    assert calls == [(src.config, 100, False)]  # the winner's request, mosaic off; the mosaic phase is its own
    assert phases["mosaic"] is src.measured and phases["no_mosaic"].stats.compute_mean_s == pytest.approx(0.2)
    assert any("kept in the study" in n for n in notes)
    again = ho.gather_phases(h, ho.from_study(study), MACHINE, True, probe_fn, notes.append)
    assert len(calls) == 1 and again["no_mosaic"].to_dict() == phases["no_mosaic"].to_dict()  # reused
    assert ho.gather_phases(h, ho.Source("p", CONFIG, src.workload, None, None), MACHINE, False, probe_fn,
                            notes.append) == {}  # fmt: skip
    study.set_winner(0, "target")
    assert ho.from_study(study).config.batch == 8  # the search's own pick (a --target-epoch) wins


def test_profile_source_reads_its_study(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    _study(storage, "s")
    w = Workload(data="/d/data.yaml", model="yolo11n.yaml", epochs=100)
    meta = {"study": "s", "trial": 1, "machine": MACHINE.to_dict(), "machine_summary": MACHINE.summary()}
    path = profiles.write(tmp_path / "p.yaml", CONFIG, w, meta)
    src = ho.from_profile(path, storage)
    assert src.config == CONFIG and src.measured is not None and src.store is not None and src.trial == 1
    lone = ho.from_profile(path, optuna.storages.InMemoryStorage())  # its study is elsewhere: measured here
    assert lone.measured is None and "not in the storage" in lone.notes[0]
    path.with_suffix(".json").unlink()  # a bare Ultralytics cfg still trains
    bare = ho.from_profile(path, storage)
    assert bare.config == CONFIG and bare.store is None


# -- the tracker ----------------------------------------------------------------------------------------------------


RATES = Rates(
    PhaseRate(iter_s=0.5, step_s=0.2, batch=16, startup_s=3.0),
    PhaseRate(iter_s=0.3, step_s=0.2, batch=16, startup_s=1.0),
    ValRate(batch_s=0.4, batch=32),
    cache_build_s=5.0,
)


def run_epoch(tracker, trainer, clock, epoch, train_s, other_s=0.2):
    trainer.epoch = epoch
    cb = tracker.callbacks()
    cb["on_train_epoch_start"](trainer)
    for _ in range(len(trainer.train_loader)):
        cb["on_train_batch_end"](trainer)
    clock.t += train_s
    cb["on_train_epoch_end"](trainer)
    trainer.validate()
    clock.t += other_s
    cb["on_fit_epoch_end"](trainer)


def new_run():
    return tr.new_run("study s, trial 1", "s", 1, None, CONFIG, {"epochs": 3}, "AdamW", RATES, MACHINE.to_dict())


def test_tracker_times_each_phase_against_its_prediction(tmp_path):
    clock, events, saved = FakeClock(), [], []
    busy = iter([tr.Load(0, 0.0, 0.0), tr.Load(10, 10.0, 10.0),  # epoch 1: nothing else ran
                 tr.Load(10, 10.0, 10.0), tr.Load(17, 24.0, 17.0),  # epoch 2: others kept 1 core busy
                 tr.Load(20, 30.0, 30.0), tr.Load(25, 35.0, 35.0)])  # fmt: skip
    tracker = tr.EpochTracker(new_run(), CONFIG, lambda k, d: events.append((k, d)), saved.append, clock=clock,
                              load=lambda: next(busy))  # fmt: skip
    trainer = fake_trainer(tmp_path, clock=clock)
    cb = tracker.callbacks()
    tracker.begin()
    cb["on_pretrain_routine_start"](trainer)
    assert trainer.args.workers == 2  # restored: Ultralytics forces 0 on CPU
    clock.t = 7.0  # model build, dataset scan, cache build
    cb["on_pretrain_routine_end"](trainer)
    start = events[0][1]
    assert events[0][0] == "start" and start["setup_s"] == 7.0 and start["prediction"].setup_s == 5.0
    run_epoch(tracker, trainer, clock, 0, train_s=9.9)  # predicted 9.0: +10%, inside the tolerance
    run_epoch(tracker, trainer, clock, 1, train_s=7.0)  # predicted 5.4: +30%, with another process busy
    run_epoch(tracker, trainer, clock, 2, train_s=4.6)  # no mosaic: predicted 4.6
    e1, e2, e3 = (d["record"] for k, d in events if k == "epoch")
    causes = [d["causes"] for k, d in events if k == "epoch"]
    assert (e1.train_s, e1.predicted_train_s, e1.val_s, e1.predicted_val_s) == (
        pytest.approx(9.9), pytest.approx(9.0), pytest.approx(0.8), pytest.approx(0.8)
    )  # fmt: skip
    assert e1.train_error == pytest.approx(0.1) and causes[0] == []
    assert e1.other_s == pytest.approx(0.2) and e1.images == 160 and e1.images_per_s == pytest.approx(160 / 9.9)
    assert e1.metrics["metrics/mAP50-95(B)"] == 0.25 and e1.phase == "warm-up, mosaic"
    assert e2.train_error == pytest.approx(7.0 / 5.4 - 1)
    cores = len(os.sched_getaffinity(0))
    assert causes[1][0] == f"CPU contention: other processes kept 1.0 of {cores} cores busy"
    assert e3.phase == "no mosaic" and e3.train_error == pytest.approx(0.0)
    # Ultralytics' final validation of best.pt comes through on_fit_epoch_end once more, without an epoch
    clock.t += 1.5
    cb["on_fit_epoch_end"](trainer)
    run = tracker.finish("finished")
    assert run.final_val_s == pytest.approx(1.5) and run.final_metrics["metrics/mAP50(B)"] == 0.5
    assert run.status == "finished" and len(saved) == 6  # start, 3 epochs, final, finish
    assert run.actual_s == pytest.approx(7 + (9.9 + 7 + 4.6) + 3 * (0.8 + 0.2) + 1.5)
    assert run.predicted_s == pytest.approx(5 + (9.0 + 5.4 + 4.6) + 3 * 0.8 + 0.8)
    assert run.unpredicted_s == pytest.approx(2 + 3 * 0.2)
    assert run.predicted_parts_s == pytest.approx(run.actual_s - run.unpredicted_s)
    assert tr.TrainRun.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_tracker_warns_when_ultralytics_changes_the_settings(tmp_path):
    events = []
    clock = FakeClock()
    tracker = tr.EpochTracker(new_run(), CONFIG, lambda k, d: events.append((k, d)), lambda r: None, clock=clock,
                              load=lambda: tr.Load(0, None, 0))  # fmt: skip
    trainer = fake_trainer(tmp_path, clock=clock)
    trainer.train_loader.dataset.cache = None  # Ultralytics dropped the RAM cache
    tracker.callbacks()["on_pretrain_routine_start"](trainer)
    tracker.callbacks()["on_pretrain_routine_end"](trainer)
    warnings = [d["text"] for k, d in events if k == "warning"]
    assert any("dropped cache=ram" in w for w in warnings)
    assert tracker.run.warnings == tuple(warnings)


def test_likely_causes():
    assert tr.likely_causes(0.3, True, None, 2, None)[0].startswith("first epoch: a cold disk cache")
    assert tr.likely_causes(0.3, False, 0.1, 2, 2) == [
        "another process on the GPU (2 besides this one)",
        "thermal throttling or lower clocks",
        "a cold disk cache (the files no longer fit in RAM alongside the rest)",
    ]
    assert "probes ran slower" in tr.likely_causes(-0.3, False, None, 2, None)[0]


def test_runs_are_kept_in_the_study_and_beside_ultralytics_results(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    study = _study(storage)
    run = replace(new_run(), save_dir=str(tmp_path))
    tr.persister(study)(run)
    assert json.loads((tmp_path / tr.EPOCHS_JSON).read_text())["id"] == run.id
    assert store.load(storage, "s").train_runs() == [run]
    interrupted = replace(run, sessions=(Session(started="2026-01-01T00:00:00", status="interrupted"),))
    assert tr.resumable_run([interrupted]) is None  # no last.pt
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "last.pt").write_bytes(b"x")
    assert tr.resumable_run([interrupted]) == interrupted
    done = replace(interrupted, sessions=(Session(started="2026-01-01T00:00:00", status="finished"),))
    assert tr.resumable_run([done]) is None


# -- the CLI: Ctrl-C and resume with a fake Ultralytics, then bad input ---------------------------------------------


class FakeYOLO:
    """Drives the callbacks as Ultralytics' trainer does; Ctrl-C during the epoch named by `interrupt_at`."""

    interrupt_at: int | None = None
    calls: ClassVar[list] = []

    def __init__(self, model):
        self.model, self.callbacks = model, {}

    def add_callback(self, event, fn):
        self.callbacks.setdefault(event, []).append(fn)

    def _run(self, event, trainer):
        for fn in self.callbacks.get(event, []):
            fn(trainer)

    def train(self, **kwargs):
        FakeYOLO.calls.append((self.model, kwargs))
        save_dir = Path(kwargs.get("project", FakeYOLO.project)) / "train"
        resume = "resume" in kwargs
        clock = FakeClock()
        trainer = fake_trainer(save_dir, epochs=2 if resume else kwargs["epochs"], start_epoch=1 if resume else 0,
                               clock=clock)  # fmt: skip
        self.trainer = trainer
        (save_dir / "weights").mkdir(parents=True, exist_ok=True)
        self._run("on_pretrain_routine_start", trainer)
        self._run("on_pretrain_routine_end", trainer)
        for epoch in range(trainer.start_epoch, trainer.epochs):
            trainer.epoch = epoch
            self._run("on_train_epoch_start", trainer)
            if epoch == FakeYOLO.interrupt_at:
                raise KeyboardInterrupt
            self._run("on_train_batch_end", trainer)
            self._run("on_train_epoch_end", trainer)
            trainer.validate()
            (save_dir / "weights" / "last.pt").write_bytes(b"checkpoint")
            self._run("on_fit_epoch_end", trainer)
        self._run("on_fit_epoch_end", trainer)  # the final validation


@pytest.fixture
def fake_study(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "ds")
    db = f"sqlite:///{tmp_path / 'studies.db'}"
    _study(optuna.storages.RDBStorage(db), "s", data=str(data), machine=fingerprint())
    import ultralytics

    monkeypatch.setattr(ultralytics, "YOLO", FakeYOLO)
    FakeYOLO.project, FakeYOLO.calls, FakeYOLO.interrupt_at = tmp_path / "runs", [], None
    return db


def test_ctrl_c_exits_130_and_resume_continues_the_run(fake_study, tmp_path):
    FakeYOLO.interrupt_at = 1
    args = ["train", "--study", "s", "--storage", fake_study, "--epochs", "2", "--no-measure",
            f"project={tmp_path / 'runs'}"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 130, result.output
    assert "epoch 1/2  train" in result.stdout
    (summary,) = [ln for ln in result.stdout.splitlines() if ln.startswith("interrupted")]  # one line
    assert summary.startswith("interrupted: 1/2 epochs") and "autotune train --resume --study s" in summary
    (run,) = store.load(store.open_storage(fake_study), "s").train_runs()
    assert run.status == "interrupted" and len(run.records) == 1 and run.last_pt.is_file()
    assert json.loads((Path(run.save_dir) / tr.EPOCHS_JSON).read_text())["status"] == "interrupted"
    model, kwargs = FakeYOLO.calls[0]
    assert model == "yolo11n.yaml" and kwargs["batch"] == 16 and kwargs["optimizer"] == "AdamW"

    FakeYOLO.interrupt_at = None
    result = runner.invoke(app, ["train", "--study", "s", "--storage", fake_study, "--resume"])
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.stdout and "finished: 2/2 epochs" in result.stdout
    model, kwargs = FakeYOLO.calls[1]
    assert model == str(run.last_pt) and kwargs == {"resume": str(run.last_pt)}
    (again,) = store.load(store.open_storage(fake_study), "s").train_runs()
    assert again.id == run.id and [r.epoch for r in again.records] == [1, 2]
    assert [s.status for s in again.sessions] == ["interrupted", "finished"] and again.records[1].session == 1
    assert again.sessions[1].start_epoch == 1
    result = runner.invoke(app, ["train", "--study", "s", "--storage", fake_study, "--resume"])
    _bad_result(result, "no interrupted run with a last.pt")


def _bad_result(result, expected):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("autotune: error:") and expected in lines[0], lines[0]


def _bad(args, expected):
    _bad_result(runner.invoke(app, args), expected)


def test_bad_input(tmp_path, fake_study):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    _bad(["train", "--best", "--storage", empty], "no study yet in storage")
    assert not (tmp_path / "empty.db").exists()  # asking leaves no empty database behind
    _bad(["train", "--study", "nope", "--storage", fake_study], "no study named 'nope'")
    _bad(["train"], "say what to train")
    _bad(["train", "--best", "--profile", "p.yaml"], "not both")
    _bad(["train", "--profile", str(tmp_path / "missing.yaml")], "not found")
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch: [oops\n")
    _bad(["train", "--profile", str(bad)], "not valid YAML")
    bad.write_text("- just\n- a list\n")
    _bad(["train", "--profile", str(bad)], "not an autotune profile")
    _bad(["train", "--study", "s", "--storage", fake_study, "lr00=0.1"], "not an Ultralytics setting")
    _bad(["train", "--study", "s", "--storage", fake_study, "batch=64"], "it was measured")
    _bad(["train", "--study", "s", "--storage", fake_study, "--epoch", "3"], "no such option: --epoch")
    _bad(["train", "--study", "s", "--storage", fake_study, "--epochs", "0"], "epochs must be a whole number from 1")
    _bad(["train", "--study", "s", "--storage", fake_study, "--optimizer", "Lion"], "unknown optimizer")
    _bad(["train", "--study", "s", "--storage", fake_study, "--resume", "--epochs", "3"], "drop the other")


# -- real training on a tiny workload (slow tier) --------------------------------------------------------------------


@pytest.mark.integration
def test_real_training_run_measures_the_no_mosaic_phase_and_tracks_both(tiny_demo, tmp_path):
    """Two real epochs (mosaic, then close_mosaic's last one) after one real no-mosaic probe; ~40 s on 2 cores."""
    import subprocess
    import sys

    config = TrainConfig(batch=8, workers=1, imgsz=64, cache="none", device="cpu")
    mosaic = fake_result(config, iter_s=0.2, n_train=96)  # the winner's probe: its numbers only feed the prediction
    mosaic = replace(mosaic, options={"iters": 4, "warmup_min": 1, "warmup_max": 6}, workload={
        **mosaic.workload, "data": str(tiny_demo)})  # fmt: skip
    db = f"sqlite:///{tmp_path / 'studies.db'}"
    study = _study(optuna.storages.RDBStorage(db), "tiny", str(tiny_demo), fingerprint(), mosaic, config=config)
    study.set_winner(0, "test")  # batch 8
    env = {**os.environ, "AUTOTUNE_CACHE": str(tmp_path / "cache"), "YOLO_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "autotune.cli", "train", "--study", "tiny", "--storage", db, "--epochs", "2",
           "--close-mosaic", "1", f"project={tmp_path / 'runs'}", "name=tiny"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "measuring the no-mosaic phase" in proc.stderr and "kept in the study" in proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("epoch ")]
    # warm-up: min(3, epochs - 1) = 1 epoch; close_mosaic 1: the last one without mosaic
    assert lines[0].startswith("epoch 1/2  train") and lines[0].endswith("[warm-up, mosaic]")
    assert "predicted" in lines[0] and lines[1].endswith("[no mosaic]")
    study = store.load(store.open_storage(db), "tiny")
    key = ho.phase_key(config, 100, Workload(str(tiny_demo), "yolo11n.yaml", 100), fingerprint().identity_hash())
    no_mosaic = study.phase("no_mosaic", key)
    assert no_mosaic.status == "ok" and no_mosaic.effective["mosaic"] is False
    assert no_mosaic.memory.val_first_pass_s is not None and no_mosaic.memory.val_batches == 2
    (run,) = study.train_runs()
    assert run.status == "finished" and [r.mosaic for r in run.records] == [True, False]
    assert all(r.train_s > 0 and r.val_s > 0 and r.predicted_train_s for r in run.records)
    assert run.records[0].images == 96 and run.config["batch"] == 8 and run.args["workers"] == 1
    assert "metrics/mAP50-95(B)" in run.final_metrics and run.final_val_s > 0
    assert (Path(run.save_dir) / tr.EPOCHS_JSON).is_file() and run.last_pt.is_file()
    assert Path(run.save_dir) == tmp_path / "runs" / "tiny"
