"""The probe's Ultralytics callbacks (measure/hooks.py), driven by hand with a fake trainer and a fake clock, as
Ultralytics' training loop would call them."""

import pytest
from fakes import FakeClock, fake_trainer

from autotune.measure.hooks import STEP_SAMPLES, ProbeHooks, Probes, WindowFull
from autotune.measure.timing import MEASURE, WARMUP, IterationRecorder


def _hooks(clock, beats, calls, iters=4, warmup_min=3):
    recorder = IterationRecorder(iters=iters, warmup_min=warmup_min, warmup_max=12, window=1, clock=clock,
                                 sync=clock.sync)  # fmt: skip
    machine = Probes(
        at_setup=lambda trainer: calls.append("setup"),
        at_start=lambda: calls.append("start"),
        start_profilers=lambda trainer: calls.append("profilers on"),
        stop_profilers=lambda: {"utilisation": {"samples": 3}},
        live_workers=lambda loader: 2,
    )
    return ProbeHooks(workers=2, iters=iters, warmup_max=12, recorder=recorder, heartbeat=beats.append,
                      keep_last_batch=True, machine=machine)  # fmt: skip


def _iteration(hooks, trainer, clock, wait=0.1, compute=0.5):
    """One iteration as Ultralytics runs it: wait for the batch, forward + backward, maybe a step, then the end."""
    clock.t += wait
    cb = hooks.callbacks()
    cb["on_train_batch_start"](trainer)
    trainer.preprocess_batch({"img": "batch"})
    clock.t += compute
    if trainer.accumulate == 1 or trainer.steps % trainer.accumulate == 0:  # the period, roughly as Ultralytics
        trainer.optimizer_step()
    cb["on_train_batch_end"](trainer)


def test_the_hooks_restore_workers_time_every_iteration_and_stop_at_a_full_window(tmp_path):
    clock, beats, calls = FakeClock(), [], []
    hooks = _hooks(clock, beats, calls)
    trainer = fake_trainer(tmp_path, clock=clock)

    def step():  # the optimizer step takes its time
        trainer.steps += 1
        clock.t += 0.2

    trainer.optimizer_step = step
    cb = hooks.callbacks()
    cb["on_pretrain_routine_start"](trainer)
    assert trainer.args.workers == 2  # Ultralytics forces 0 on a CPU: restored before any loader exists
    cb["on_pretrain_routine_end"](trainer)
    assert hooks.eff["batch"] == 16 and hooks.eff["accumulate"] == 4 and hooks.eff["optimizer"] == "AdamW"
    assert calls == ["setup"]
    cb["on_train_epoch_start"](trainer)
    assert trainer._oom_retries == 3  # an OOM stays an OOM: Ultralytics' batch halving is off
    assert trainer.accumulate == 1  # early warm-up iterations step every time: the step's cost from samples
    assert calls == ["setup", "start"]
    with pytest.raises(WindowFull):
        for _ in range(30):
            _iteration(hooks, trainer, clock)
    r = hooks.recorder
    assert r.warmup is not None and len(r.window_times()[1]) == 4  # the window: 4 measured iterations
    assert len(r.step_s) >= r.step_discard + STEP_SAMPLES and r.step_s[0] == pytest.approx(0.2)
    assert trainer.accumulate == 4  # back to the real period once the step samples are in
    assert r.compute_s[-1] == pytest.approx(0.5) and r.data_wait_s[-1] == pytest.approx(0.1)  # step apart
    assert calls == ["setup", "start", "profilers on"] and hooks.extras == {"utilisation": {"samples": 3}}
    assert hooks.loader_procs == 2 and hooks.last_batch == {"img": "batch"}
    assert beats[0] == {"phase": "building"}
    measured = [b for b in beats if b.get("phase") == MEASURE]
    assert measured and measured[-1]["window_s"] > 0  # the window so far: what a search prunes on
    assert any(b.get("phase") == WARMUP and "eta_s" in b for b in beats)


def test_a_window_that_never_fills_keeps_asking_for_batches(tmp_path):
    clock, beats, calls = FakeClock(), [], []
    hooks = _hooks(clock, beats, calls, iters=50)
    trainer = fake_trainer(tmp_path, clock=clock)
    cb = hooks.callbacks()
    cb["on_pretrain_routine_start"](trainer)
    cb["on_pretrain_routine_end"](trainer)
    cb["on_train_epoch_start"](trainer)
    for _ in range(10):
        _iteration(hooks, trainer, clock)  # no WindowFull yet: the window needs 50
    assert not hooks.recorder.done and beats[-1]["eta_s"] > 0


def test_validation_is_timed_on_a_warm_pass_even_with_a_one_batch_loader():
    """passes.passes_over reads a loader pass after pass: a one-batch validation loader gives its batch twice, so
    the timed batch is the second (warm), never the first with its worker start-up."""
    from autotune.measure.passes import passes_over

    batches = passes_over(["only"])
    assert [next(batches) for _ in range(3)] == ["only", "only", "only"]
    with pytest.raises(RuntimeError, match="no batches"):
        next(passes_over([]))
