"""The side-by-side phase at the end of a search (search/sidebyside.py) and the honest intervals (measure/stats.py)."""

import math
from dataclasses import replace

import optuna
import pytest
from fakes import FakeClock, FakeProbe
from test_search import BASELINE, make_search

from autotune.measure.stats import noise_floor, product_interval, quotient_interval, ratio_interval
from autotune.records.config import TrainConfig
from autotune.records.search import Space, TrialRecord
from autotune.report.build import build
from autotune.search import sidebyside
from autotune.search.sidebyside import BASELINE as B
from autotune.search.sidebyside import RUNNER_UP, WINNER, Candidate, candidates, schedule
from autotune.search.store import StudyStore


def record(number: int, config: TrainConfig, ips: float) -> TrialRecord:
    return TrialRecord(number=number, state="COMPLETE", config=config.to_dict(), epoch_s=800 / ips, images_per_s=ips,
                       sec_per_iter=None, feasible=True, status="ok", reason="", duration_s=30.0,
                       peak_memory_bytes=None)  # fmt: skip


A, C, D = BASELINE.with_(batch=8), BASELINE.with_(batch=4), BASELINE.with_(batch=32)


def test_the_runner_up_joins_only_within_the_noise_floor():
    win = record(1, A, 100.0)
    near = [win, record(2, C, 92.0), record(3, D, 50.0)]  # 100 / 92: 8.7% slower epoch, within 10%
    assert [c.role for c in candidates(BASELINE, near, win)] == [B, WINNER, RUNNER_UP]
    assert candidates(BASELINE, near, win)[2].config == C
    far = [win, record(2, C, 85.0)]  # 17.6% slower: told apart by the selection runs
    assert [c.role for c in candidates(BASELINE, far, win)] == [B, WINNER]
    same = record(0, BASELINE, 40.0)
    assert [c.role for c in candidates(BASELINE, [same], same)] == [B]  # the baseline won: measured for drift only


def test_the_order_alternates_from_round_to_round():
    cands = [Candidate(B, BASELINE), Candidate(WINNER, A), Candidate(RUNNER_UP, C)]
    assert [(k, c.role) for k, c in schedule(cands, 2)] == [
        (0, B), (0, WINNER), (0, RUNNER_UP), (1, RUNNER_UP), (1, WINNER), (1, B)
    ]  # fmt: skip


class LuckyProbe(FakeProbe):
    """A probe whose first measurement of `lucky` reads `luck` x its true rate: the selection run's luck."""

    def __init__(self, clock, lucky: TrainConfig, luck: float, **kw):
        super().__init__(clock, **kw)
        self.lucky, self.luck, self.seen = lucky, luck, set()

    def __call__(self, c, w, o, on_progress=None):
        r = super().__call__(c, w, o)  # no progress beats: they would let the pruner see the true rate
        if c == self.lucky and c not in self.seen and r.stats is not None:
            self.seen.add(c)
            r = replace(r, stats=replace(r.stats, images_per_s=r.stats.images_per_s * self.luck))
        return r


def test_a_lucky_selection_run_is_corrected_side_by_side_and_the_headline_comes_from_the_fresh_runs():
    """The FakeProbe rates rise with batch; a lucky first probe of batch 4 reads 3x. Side by side it reads true,
    so the headline speedup is the fresh runs' ratio, not the lucky one, and the report and train agree."""
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    lucky = BASELINE.with_(batch=4)
    probe = LuckyProbe(clock, lucky, 3.0, seconds=30)
    space = Space(batch_low=4, batch_high=16, workers_high=2, imgsz=(128,), cache=("none",))
    search = make_search(storage, clock, probe, budget_s=600, seeds=(lucky,), space=space)
    out = search.run()
    sb = out.side_by_side
    assert sb is not None and sb.rounds == 2
    true = {c: FakeProbe(FakeClock())(c, search.workload, search.s.probe_options).stats.images_per_s
            for c in sb.configs.values()}  # fmt: skip
    for role, config in sb.configs.items():
        assert sb.rates[role] == pytest.approx((true[config],) * 2)  # fresh runs: no luck
    f, _, _, repeated = sb.speedup
    assert f == pytest.approx(true[sb.configs[sb.faster]] / true[BASELINE]) and repeated
    assert sb.configs[WINNER] == lucky and out.winner.images_per_s == pytest.approx(3 * true[lucky])  # selected lucky
    snap = StudyStore(optuna.load_study(study_name="test", storage=storage)).snapshot("x")
    d = build(snap)
    win_cfg = TrainConfig.from_dict(out.winner.config)
    assert d.end_to_end == pytest.approx(true[win_cfg] / true[BASELINE])  # the report's headline: fresh runs
    assert "side by side" in d.end_to_end_source
    assert d.winner.images_per_s == pytest.approx((true[win_cfg],) * 2)


def test_a_runner_up_that_measures_faster_side_by_side_becomes_the_winner():
    """batch 24 is truly 6% slower than batch 32 but its selection run read 10% high, so it was picked; the two are
    within the noise floor, so both are measured again, and batch 32 wins there."""
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    x, y = BASELINE.with_(batch=24), BASELINE.with_(batch=32)
    space = Space(batch_low=24, batch_high=32, workers_high=2, imgsz=(128,), cache=("none",))
    probe = LuckyProbe(clock, x, 1.1, seconds=30)
    out = make_search(storage, clock, probe, budget_s=400, space=space, seeds=(x, y)).run()
    sb = out.side_by_side
    assert sb is not None and sb.configs[WINNER] == x and sb.configs[RUNNER_UP] == y
    assert sb.faster == RUNNER_UP and TrainConfig.from_dict(out.winner.config) == y
    assert "measured side by side" in out.pick_reason
    snap = StudyStore(optuna.load_study(study_name="test", storage=storage)).snapshot("x")
    assert snap.winner == out.winner.number  # what `train --best` trains


def test_fresh_runs_pick_the_latest_phase_and_a_representative_run():
    assert sidebyside.fresh_runs((), BASELINE, A) is None
    assert sidebyside.representative([]) is None


def test_a_ratio_from_repeats_spans_their_extremes_and_a_single_measurement_gets_the_floor():
    f, lo, hi, repeated = ratio_interval([100.0, 110.0], [150.0, 165.0])
    assert (f, lo, hi, repeated) == (pytest.approx(1.5), pytest.approx(150 / 110), pytest.approx(165 / 100), True)
    f, lo, hi, repeated = ratio_interval([100.0], [150.0], floor=0.10)
    assert (lo, hi, repeated) == (pytest.approx(1.5 / 1.1), pytest.approx(1.65), False)  # n=1: never zero-width
    # one side repeated, widely: its own spread is kept where wider than the floor
    f, lo, hi, _ = ratio_interval([100.0], [120.0, 180.0], floor=0.10)
    assert lo == pytest.approx(1.2) and hi == pytest.approx(1.8)
    with pytest.raises(ValueError):
        ratio_interval([], [1.0])


def test_the_noise_floor_is_the_baselines_drift_or_ten_percent():
    assert noise_floor([100.0]) == 0.10
    assert noise_floor([100.0, 104.0]) == 0.10
    assert noise_floor([100.0, 125.0]) == pytest.approx(25 / 112.5)


def test_products_and_quotients_add_log_widths_in_quadrature():
    p, lo, hi = product_interval([(2.0, 2.0 / 1.1, 2.2), (1.5, 1.5 / 1.1, 1.65)])
    w = math.sqrt(2) * math.log(1.1)
    assert (p, lo, hi) == (pytest.approx(3.0), pytest.approx(3.0 / math.exp(w)), pytest.approx(3.0 * math.exp(w)))
    q, qlo, qhi = quotient_interval((3.0, 3.0 / 1.1, 3.3), (p, lo, hi))
    wq = math.hypot(math.log(1.1), w)
    assert (q, qlo, qhi) == (pytest.approx(1.0), pytest.approx(1 / math.exp(wq)), pytest.approx(math.exp(wq)))
    with pytest.raises(ValueError):
        product_interval([])
