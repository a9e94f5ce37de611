"""The batch ladder: hand-made trial records in, the next rung out; and its effect on a fake search."""

from dataclasses import replace

import optuna
from fakes import FakeClock, FakeProbe
from test_search import make_search

from autotune.records.search import Space, TrialRecord
from autotune.search.ladder import next_rung
from autotune.search.space import MemoryModel

SPACE = Space(batch_low=2, batch_high=32, workers_high=2, imgsz=(96, 128), cache=("none", "ram"))
REST = {"workers": 0, "imgsz": 96, "cache": "ram", "source": "original"}
GIB = 2**30


def rec(
    n: int, batch: int, epoch_s: float | None, status: str = "ok", reason: str = "", memory_wall: bool = False, **rest
) -> TrialRecord:
    feasible = status == "ok"
    return TrialRecord(n, "COMPLETE", {**REST, **rest, "batch": batch}, epoch_s if feasible else None, None, None,
                       feasible, status, reason, 30.0, None, memory_wall)  # fmt: skip


def test_the_best_config_is_proposed_at_twice_its_batch():
    records = [rec(0, 16, 40.0, imgsz=128), rec(1, 11, 30.0), rec(2, 4, 60.0)]
    assert next_rung(records, SPACE, None, None) == {**REST, "batch": 22}


def test_the_rung_is_capped_by_the_space_and_ends_once_measured():
    assert next_rung([rec(0, 22, 30.0)], SPACE, None, None)["batch"] == 32  # 44 capped at batch_high
    assert next_rung([rec(0, 22, 30.0), rec(1, 32, 31.0)], SPACE, None, None) is None  # 32 tried, not better
    assert next_rung([rec(0, 32, 30.0)], SPACE, None, None) is None  # already at the top


def test_the_rung_stays_below_a_batch_that_failed_on_memory_with_the_same_settings():
    records = [rec(0, 10, 30.0), rec(1, 14, None, status="oom")]
    assert next_rung(records, SPACE, None, None)["batch"] == 13
    other = [rec(0, 10, 30.0), rec(1, 14, None, status="oom", imgsz=128)]  # another imgsz: not the same ladder
    assert next_rung(other, SPACE, None, None)["batch"] == 20
    # skipped as predicted over the limit (the store marks the memory constraint): caps like an OOM
    skipped = [rec(0, 10, 30.0), rec(1, 12, None, status="skipped", reason="predicted peak 9 GiB", memory_wall=True)]
    assert next_rung(skipped, SPACE, None, None)["batch"] == 11
    cache = [rec(0, 10, 30.0), rec(1, 12, None, status="skipped", reason="cache=ram needs 9 GiB")]
    assert next_rung(cache, SPACE, None, None)["batch"] == 20  # a skip for another reason does not
    assert next_rung([rec(0, 10, 30.0), rec(1, 11, None, status="oom")], SPACE, None, None) is None


def test_the_memory_model_caps_the_rung_with_headroom():
    model = MemoryModel(intercept=1 * GIB, slope=64 * 2**20 / 96**2, n=3)  # 1 GiB + 64 MiB per batch at 96 px
    best = [rec(0, 16, 30.0)]
    assert next_rung(best, SPACE, model, 4 * GIB)["batch"] == 32  # (0.9 x 4 - 1) GiB / 64 MiB = 41.6: 2 x 16
    assert next_rung(best, SPACE, model, int(2.5 * GIB))["batch"] == 20  # (2.25 - 1) GiB / 64 MiB = 20
    assert next_rung(best, SPACE, model, 2 * GIB) is None  # (1.8 - 1) GiB / 64 MiB = 12.8: below 16


def test_no_feasible_trial_no_rung():
    assert next_rung([rec(0, 16, None, status="oom")], SPACE, None, None) is None
    assert next_rung([], SPACE, None, None) is None


def test_the_ladder_takes_a_short_search_to_the_top_of_the_batch_range():
    """The fake probe's throughput grows with batch: with the ladder the winner reaches batch_high."""
    results = {}
    for after in (4, None):
        clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
        search = make_search(storage, clock, FakeProbe(clock, seconds=30), budget_s=420)
        search.s = replace(search.s, ladder_after=after)
        results[after] = search.run()
    with_ladder, without = results[4], results[None]
    assert with_ladder.winner.config["batch"] == 32
    assert with_ladder.winner.epoch_s <= without.winner.epoch_s
    assert len(with_ladder.trials) == len(without.trials)  # the rungs replace sampled trials, within the budget


def test_the_live_view_names_a_ladder_rung():
    from autotune.records.config import TrainConfig
    from autotune.report.terminal import SearchProgress

    view = SearchProgress(600.0, lambda: 0.0, 800)
    config = TrainConfig(batch=32, workers=2, imgsz=96, cache="ram", device="cpu")
    view.event("rung", {"config": config})
    view.event("trial", {"number": 5, "config": config})
    assert view.running.startswith("trial 5 (batch ladder): batch=32")
    view.event("trial", {"number": 6, "config": config})
    assert view.running.startswith("trial 6: ")


def test_no_rung_is_left_waiting_when_the_budget_ends():
    """CI caught a rung enqueued after the last trial: a WAITING trial no worker ran (and none would)."""
    tall = Space(batch_low=2, batch_high=4096, workers_high=2, imgsz=(96, 128), cache=("none", "ram"))
    for budget in range(300, 630, 30):  # the range is tall enough that a next rung always exists
        clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
        search = make_search(storage, clock, FakeProbe(clock, seconds=30), budget_s=budget, space=tall)
        search.s = replace(search.s, ladder_after=1)
        search.run()
        states = {t.state.name for t in optuna.load_study(study_name="test", storage=storage).trials}
        assert "WAITING" not in states, (budget, states)
