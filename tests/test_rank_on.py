"""What a search ranks on: the projected epoch with its validation pass (the default), or training alone."""

from __future__ import annotations

import optuna
import pytest
from fakes import FakeClock, FakeProbe
from test_search import BASELINE, DATASET, MACHINE, WORKLOAD

from autotune.records.config import ProbeOptions, TrainConfig
from autotune.records.probe import ValRate, val_seconds
from autotune.records.search import RANK_EPOCH, RANK_TRAIN, Space
from autotune.search.rules import ranked_epoch_s
from autotune.search.runner import Search
from autotune.search.settings import SearchSettings

SPACE = Space(batch_low=4, batch_high=32, workers_high=2, imgsz=(128,), cache=("none",))
N_VAL = 200


def test_the_ranked_epoch_adds_one_validation_pass_and_spreads_one_time_costs() -> None:
    # 800 images at 40 images/s = 20 s; validation 5 s; a 300 s cache build over 100 epochs = 3 s
    assert ranked_epoch_s(800, 40.0, 300.0, 100, 5.0, RANK_EPOCH) == pytest.approx(28.0)
    assert ranked_epoch_s(800, 40.0, 300.0, 100, 5.0, RANK_TRAIN) == pytest.approx(23.0)
    assert ranked_epoch_s(800, 40.0, 0.0, 100, None, RANK_EPOCH) == pytest.approx(20.0)  # not measured: adds none
    # 200 validation images at 2x batch 16 = 7 batches (the last short) of 0.5 s, workers started once
    assert val_seconds(N_VAL, ValRate(batch_s=0.5, batch=32, startup_s=2.0)) == pytest.approx(3.5)
    assert val_seconds(N_VAL, ValRate(batch_s=0.5, batch=32, startup_s=2.0), first=True) == pytest.approx(5.5)


def slow_val_with_workers(c: TrainConfig) -> float:
    """Training gains 30% per worker in the fake probe; here each validation batch costs 20 s with 2 workers."""
    return 20.0 if c.workers == 2 else 0.1


def search(storage: optuna.storages.BaseStorage, rank_on: str, clock: FakeClock, probe: FakeProbe) -> Search:
    settings = SearchSettings(
        budget_s=900.0,
        storage="sqlite:///:memory:",
        study="rank",
        baseline=BASELINE.with_(workers=0),
        probe_options=ProbeOptions(iters=5),
        rank_on=rank_on,
        lever_share=0.0,
    )
    return Search(settings, SPACE, WORKLOAD, MACHINE, DATASET, 800, probe, storage, clock=clock, n_val=N_VAL)


@pytest.mark.parametrize("rank_on", [RANK_EPOCH, RANK_TRAIN])
def test_validation_decides_the_winner_only_when_the_study_ranks_on_the_epoch(rank_on: str) -> None:
    clock = FakeClock()
    probe = FakeProbe(clock, seconds=20, val_batch_s=slow_val_with_workers)
    out = search(optuna.storages.InMemoryStorage(), rank_on, clock, probe).run()
    assert out.winner is not None and out.rank_on == rank_on
    done = [r for r in out.trials if r.feasible]
    assert all(r.val_s is not None for r in done)
    w = out.winner
    if rank_on == RANK_EPOCH:
        assert w.config["workers"] < 2  # the fastest training (2 workers) validates for minutes: it loses
        assert w.epoch_s == pytest.approx(800 / w.images_per_s + w.val_s)
    else:
        assert w.config["workers"] == 2
        assert w.epoch_s == pytest.approx(800 / w.images_per_s)


def test_a_study_keeps_the_ranking_it_was_made_with_and_says_so() -> None:
    storage, clock = optuna.storages.InMemoryStorage(), FakeClock()
    first = search(storage, RANK_TRAIN, clock, FakeProbe(clock, seconds=20, val_batch_s=slow_val_with_workers))
    assert first.rank_on == RANK_TRAIN and not first.notes
    again = search(storage, RANK_EPOCH, clock, FakeProbe(clock, seconds=20, val_batch_s=slow_val_with_workers))
    assert again.rank_on == RANK_TRAIN  # mixing two objectives in one study would compare unlike values
    assert any("ranks on training alone" in n and "--fresh" in n for n in again.notes)
    assert again.store.meta().n_val == N_VAL
