"""The search logic with a fake probe, a fake clock and an in-memory Optuna study."""

from dataclasses import replace

import optuna
import pytest
import yaml
from fakes import GIB, FakeClock, FakeProbe

from autotune.errors import UserError
from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.machine import GPU, Machine
from autotune.records.search import DatasetSize, Space, TrialRecord
from autotune.search import profiles
from autotune.search.names import mask_url
from autotune.search.pick import front, pick
from autotune.search.rules import SlowerThanBest
from autotune.search.runner import INFEASIBLE_S, Search
from autotune.search.settings import SearchSettings
from autotune.search.space import build_space, cache_violation, fit_memory_model, memory_violation

MACHINE = Machine("Test CPU", 2, 24 * 2**30, (), "host")
WORKLOAD = Workload(data="/data/data.yaml", model="yolo11n.yaml", epochs=100)
SPACE = Space(batch_low=2, batch_high=32, workers_high=2, imgsz=(96, 128), cache=("none", "disk", "ram"))
DATASET = DatasetSize(n_images=1000, mean_pixels=1280 * 720, mean_aspect=0.5625)
BASELINE = TrainConfig(batch=16, workers=2, imgsz=128, cache="none", device="cpu")


def make_search(
    storage,
    clock,
    probe,
    budget_s=600.0,
    limit=None,
    ram=64 * GIB,
    disk=10**13,
    target=None,
    machine=MACHINE,
    space=SPACE,
    baseline=BASELINE,
    end_reserve=None,
    seeds=(),
    autobatch=None,
):
    settings = SearchSettings(
        budget_s=budget_s,
        storage="sqlite:///:memory:",
        study="test",
        baseline=baseline,
        probe_options=ProbeOptions(iters=5),
        memory_limit_bytes=limit,
        target_epoch_s=target,
        end_reserve_s=end_reserve,
        seeds=seeds,
        autobatch=autobatch,
    )
    return Search(
        settings, space, WORKLOAD, machine, DATASET, 800, probe, storage, clock=clock, ram_available=ram, disk_free=disk
    )


def test_runs_within_budget_seeds_baseline_and_reuses_its_measurement():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    probe = FakeProbe(clock, seconds=30)
    out = make_search(storage, clock, probe, budget_s=300).run()
    assert out.elapsed_s <= 300
    # baseline reference (30 s), trials while a 30 s trial and the side-by-side phase (4 x 30 s) fit, factor
    # probes, then the baseline and the winner twice each, side by side
    assert out.trials[0].config == BASELINE.to_dict()  # the seed comes first
    assert probe.calls.count(BASELINE) == 3  # the reference and two fresh runs; the seeded trial reused the first
    assert len(probe.calls) == 300 // 30
    sb = out.side_by_side
    assert sb is not None and sb.rounds == 2 and sb.faster == "winner"
    assert sb.configs["winner"].to_dict() == out.winner.config
    assert probe.calls[-4:] == [BASELINE, sb.configs["winner"], sb.configs["winner"], BASELINE]  # alternating
    assert out.baseline_end is not None and out.drift == pytest.approx(0.0)  # the baseline's last fresh run
    assert out.winner is not None and out.winner.feasible
    assert "budget" in out.stop_reason


def test_a_budget_too_small_for_trials_still_keeps_the_baseline_and_says_so():
    """The H100 check: a 90 s budget, probes of ~26 s. The seeded baseline trial reuses the reference probe for
    free, so the search ends with a winner (the baseline) and a note on the budget, not with no trial at all."""
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    probe = FakeProbe(clock, seconds=26)
    events = []
    search = make_search(storage, clock, probe, budget_s=90)
    search.on_event = lambda kind, data: events.append((kind, data))
    out = search.run()
    assert [t.config for t in out.trials] == [BASELINE.to_dict()]
    assert out.winner is not None and out.winner.config == BASELINE.to_dict()
    assert probe.calls.count(BASELINE) == 3  # the reference and two fresh runs at the end; the trial was free
    (note,) = [d["text"] for k, d in events if k == "note"]
    assert "too few to search" in note and "--budget 9min" in note  # 15 x 26 s / 0.75 = 520 s -> 9 min
    assert note in out.notes


def test_a_small_budget_still_searches_before_the_side_by_side_phase():
    """The side-by-side reserve (4 baseline probes) is capped at a share of the budget against trials: with 60 s
    and 10 s probes, the full reserve would leave no trial at all; capped, a configuration besides the baseline
    is tried, the factor probes yield their time, and the phase still measures each side twice."""
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    probe = FakeProbe(clock, seconds=10)
    out = make_search(storage, clock, probe, budget_s=60).run()
    assert any(t.config != BASELINE.to_dict() for t in out.trials)
    assert out.side_by_side is not None and out.side_by_side.rounds == 2
    assert clock.t <= 60


def test_no_note_when_the_budget_fits_a_search():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    out = make_search(storage, clock, FakeProbe(clock, seconds=30), budget_s=1200).run()
    assert not any("too few" in n for n in out.notes)


def test_budget_rule_never_starts_a_trial_that_cannot_finish():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    probe = FakeProbe(clock, seconds=50)
    out = make_search(storage, clock, probe, budget_s=170).run()
    # 50 s baseline, then one trial (reused baseline: free), one 50 s trial; 170-100 = 70 left < 50 + 50 reserve
    assert clock.t <= 170
    assert out.elapsed_s <= 170


def test_over_the_limit_and_oom_are_completed_infeasible_trials():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    probe = FakeProbe(clock, seconds=10, oom_above=0.5 * GIB + 16 * 128**2 * 200)  # batch > 16 at 128 OOMs
    limit = int(0.5 * GIB + 12 * 128**2 * 200)  # batch 13-16 at 128 exceed this limit without OOM
    out = make_search(storage, clock, probe, budget_s=400, limit=limit).run()
    states = {t.state for t in out.trials}
    assert "FAIL" not in states
    infeasible = [t for t in out.trials if not t.feasible]
    assert infeasible, "the fake space has a wall; the search must hit it"
    study = optuna.load_study(study_name="test", storage=storage)
    for t in study.get_trials():
        if t.user_attrs.get("status") in ("oom", "over_limit"):
            assert t.state == optuna.trial.TrialState.COMPLETE
            assert t.value == INFEASIBLE_S
            assert t.constraints["memory"] > 0
    assert all(t.peak_memory_bytes is None or t.peak_memory_bytes <= limit for t in out.trials if t.feasible)


def test_a_seed_that_runs_out_of_memory_is_measured_early_and_kept_at_its_batch():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    probe = FakeProbe(clock, seconds=10, oom_above=0.5 * GIB + 24 * 128**2 * 200)
    big = BASELINE.with_(batch=32)
    ab = {"imgsz": 128, "fraction": 0.3, "batch": 32}
    out = make_search(storage, clock, probe, budget_s=200, seeds=(big,), autobatch=ab).run()
    assert probe.calls[1] == big  # right after the baseline (whose first trial reuses its reference probe)
    t = next(t for t in out.trials if t.number == 1)  # trial 0 is the baseline's, 1 the seed's
    assert t.config["batch"] == 32
    assert (t.state, t.feasible, t.status) == ("COMPLETE", False, "oom")
    assert out.autobatch == ab
    assert optuna.load_study(study_name="test", storage=storage).user_attrs["autobatch"] == ab


def test_cache_without_the_ram_is_a_constraint_violation_not_a_removed_choice():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    probe = FakeProbe(clock, seconds=10)
    ram = int(1.9 * DATASET.n_images * 128 * 128 * 0.5625 * 3)  # below Ultralytics' 2x rule for cache=ram at 128
    out = make_search(storage, clock, probe, budget_s=400, ram=ram).run()
    ram_trials = [t for t in out.trials if t.config.get("cache") == "ram" and t.config.get("imgsz") == 128]
    assert ram_trials and all(not t.feasible and t.status == "skipped" for t in ram_trials)
    assert all("cache=ram" in t.reason for t in ram_trials)
    assert not any(c.cache == "ram" and c.imgsz == 128 for c in probe.calls)  # never probed
    assert "ram" in optuna.load_study(study_name="test", storage=storage).trials[0].distributions["cache"].choices


def test_resume_continues_the_study_without_measuring_the_baseline_again():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    first = make_search(storage, clock, FakeProbe(clock, seconds=30), budget_s=200).run()
    probe = FakeProbe(clock, seconds=30)
    second = make_search(storage, clock, probe, budget_s=200).run()
    assert len(second.trials) > len(first.trials)
    assert probe.calls.count(BASELINE) == 2  # only its two fresh runs side by side at the end
    numbers = [t.number for t in second.trials]
    assert numbers == sorted(set(numbers))


def test_a_worker_on_different_hardware_is_refused():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    make_search(storage, clock, FakeProbe(clock), budget_s=100).run()
    other = Machine("Other CPU", 64, 512 * GIB, (GPU("NVIDIA H100", 80 * GIB),), "elsewhere")
    with pytest.raises(UserError, match="not comparable"):
        make_search(storage, clock, FakeProbe(clock), machine=other)


def test_a_worker_joining_while_the_first_is_still_writing_the_study_is_not_refused():
    """Two workers started together (CI saw this): the second may read the study between the first's writes.
    Whatever prefix of the first worker's writes it sees, it must join (the same machine, the same space)."""
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    make_search(storage, clock, FakeProbe(clock), budget_s=100)  # opening the study writes what freezes it
    written = list(optuna.load_study(study_name="test", storage=storage).user_attrs.items())  # in write order
    for k in range(len(written) + 1):
        clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
        first = optuna.create_study(study_name="test", storage=storage)
        for key, value in written[:k]:  # the first worker, cut off after k writes
            first.set_user_attr(key, value)
        out = make_search(storage, clock, FakeProbe(clock, seconds=30), budget_s=300).run()
        assert out.trials, k
        ua = optuna.load_study(study_name="test", storage=storage).user_attrs
        assert ua["machine_id"] == MACHINE.identity_hash() and ua["space"] == SPACE.to_dict()


def test_the_space_is_frozen_with_the_study():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    make_search(storage, clock, FakeProbe(clock), budget_s=100).run()
    wider = Space(2, 64, 2, (96, 128), ("none", "disk", "ram"))
    with pytest.raises(UserError, match="frozen"):
        make_search(storage, clock, FakeProbe(clock), space=wider)


def test_baseline_outside_the_space_is_measured_but_not_enqueued():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    probe = FakeProbe(clock, seconds=30)
    outside = BASELINE.with_(imgsz=640)
    out = make_search(storage, clock, probe, budget_s=200, baseline=outside).run()
    assert probe.calls[0] == outside and out.baseline is not None
    assert all(t.config.get("imgsz") != 640 for t in out.trials)


def test_pruner_stops_clearly_slower_trials():
    study = optuna.create_study(pruner=SlowerThanBest(factor=1.5, min_steps=2))
    study.add_trial(optuna.trial.create_trial(value=10.0, params={}, distributions={}))
    t = study.ask()
    t.report(14.0, 1)
    t.report(14.5, 2)
    assert not t.should_prune()  # 1.45x: not clearly slower
    t.report(16.0, 3)
    assert t.should_prune()
    fresh = optuna.create_study(pruner=SlowerThanBest()).ask()
    for k in range(10):
        fresh.report(99.0, k)
    assert not fresh.should_prune()  # nothing finished to compare with


def test_search_prunes_through_progress_beats():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    out = make_search(storage, clock, FakeProbe(clock, seconds=5), budget_s=600).run()
    assert any(t.state == "PRUNED" for t in out.trials)


def _rec(n, imgsz, epoch, feasible=True):
    return TrialRecord(
        n,
        "COMPLETE",
        {"imgsz": imgsz, "batch": 8, "workers": 2, "cache": "none"},
        epoch if feasible else None,
        None,
        None,
        feasible,
        "ok",
        "",
        1.0,
        None,
    )


def test_front_and_pick_rule():
    recs = [_rec(0, 96, 10.0), _rec(1, 96, 8.0), _rec(2, 128, 15.0), _rec(3, 160, 30.0), _rec(4, 160, 1.0, False)]
    assert [r.number for r in front(recs)] == [1, 2, 3]
    assert pick(recs, None)[0].number == 1
    assert pick(recs, 20.0)[0].number == 2  # largest imgsz whose fastest config meets 20 s
    assert pick(recs, 30.0)[0].number == 3
    winner, why = pick(recs, 5.0)
    assert winner.number == 1 and "no image size meets" in why
    assert pick([_rec(0, 96, 1.0, False)], None) == (None, "no feasible trial")


@pytest.mark.parametrize(
    ("url", "masked", "secret"),
    [
        ("postgresql://bob:s3cret@db:5432/x", "postgresql://bob:***@db:5432/x", "s3cret"),
        ("postgresql://:s3cret@db/x", "postgresql://:***@db/x", "s3cret"),  # no user name
        ("postgresql://bob:s3@cr@et@db/x", "postgresql://bob:***@db/x", "s3@cr@et"),  # '@' in it: all hidden
        ("postgresql://bob:s3%40cret@db/x", "postgresql://bob:***@db/x", "s3@cret"),  # percent-escaped
        ("postgresql://bob:s3:cr/et@db/x", "postgresql://bob:***@db/x", "s3:cr/et"),  # ':' and '/' in it
        ("postgresql://bob@db/x?password=s3cret&sslmode=require", "postgresql://bob@db/x?password=***&sslmode=require",
         "s3cret"),
        ("postgresql+psycopg://bob@db/x?sslpassword=s3cret", "postgresql+psycopg://bob@db/x?sslpassword=***", "s3cret"),
        ("postgresql://bob@db/x", "postgresql://bob@db/x", None),
        ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db", None),
    ],
)  # fmt: skip
def test_mask_url_hides_every_form_of_password(url, masked, secret):
    from autotune.search.names import mask_text

    assert mask_url(url) == masked
    if secret:  # an error message that quotes the URL and, decoded, the password: neither is shown
        error = f"could not connect to {url}: password {secret!r} was refused"
        assert secret not in mask_text(error, url) and "s3" not in mask_text(error, url)


def test_memory_model_and_violation():
    pts = [(8, 128, 1000 + 8 * 128 * 128), (16, 128, 1000 + 16 * 128 * 128), (8, 256, 1000 + 8 * 256 * 256)]
    m = fit_memory_model(pts)
    assert m.slope == pytest.approx(1.0) and m.intercept == pytest.approx(1000)
    assert memory_violation(m, 64, 256, limit=10**6) is not None
    assert memory_violation(m, 2, 128, limit=10**6) is None
    assert fit_memory_model(pts[:1]) is None


def test_cache_violation_rules():
    assert cache_violation(DATASET, "ram", 128, ram_available=10**12, disk_free=0) is None
    assert "cache=ram" in cache_violation(DATASET, "ram", 640, ram_available=10**9, disk_free=0)
    assert "cache=disk" in cache_violation(DATASET, "disk", 128, ram_available=0, disk_free=10**9)
    assert cache_violation(DATASET, "none", 128, 0, 0) is None


def test_build_space_defaults_and_errors():
    sp = build_space(None, None, None, None, cpu_only=True, usable_cores=2, baseline_imgsz=640, max_batch=32)
    assert sp.imgsz == (96, 128, 160) and sp.workers_high == 2 and sp.cache == ("none", "disk", "ram")
    gpu = build_space(None, None, None, None, cpu_only=False, usable_cores=32, baseline_imgsz=640, max_batch=256)
    assert gpu.imgsz == (320, 416, 512, 640) and gpu.workers_high == 16
    assert build_space("8-64", "0,4,8", "96,128", "ram", True, 2, 640, 32) == Space(8, 64, 8, (96, 128), ("ram",))
    bad = (("x", None, None, None), (None, None, "100", None), (None, None, None, "ssd"), ("0-4", None, None, None))
    for args in bad:
        with pytest.raises(UserError):
            build_space(*args, cpu_only=True, usable_cores=2, baseline_imgsz=640, max_batch=32)


def test_profile_yaml_is_a_valid_ultralytics_cfg(tmp_path):
    from ultralytics.cfg import get_cfg

    path = profiles.write(
        tmp_path / "p.yaml",
        BASELINE.with_(batch=8, cache="ram"),
        WORKLOAD,
        {
            "study": "s",
            "trial": 3,
            "images_per_s": 42.0,
            "epoch_s": 19.0,
            "n_train": 800,
            "machine_summary": MACHINE.summary(),
        },
    )
    cfg = get_cfg(cfg=str(path))  # raises on any key Ultralytics does not know
    assert cfg.batch == 8 and cfg.cache == "ram" and cfg.data == WORKLOAD.data and cfg.model == WORKLOAD.model
    text = path.read_text()
    assert "42.0 images/s" in text and "forces workers=0" in text
    assert yaml.safe_load(text)["workers"] == 2
    assert profiles.read(path).meta["trial"] == 3


def test_ctrl_c_keeps_finished_trials_and_resumes():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    inner = FakeProbe(clock, seconds=10)

    def probe(c, w, o, on_progress=None):
        if len(inner.calls) == 4:
            raise KeyboardInterrupt  # as isolate re-raises it after killing the probe's process group
        return inner(c, w, o, on_progress)

    out = make_search(storage, clock, probe, budget_s=1000).run()
    assert out.interrupted and "Ctrl-C" in out.stop_reason
    assert out.baseline_end is None  # no repeat after an interrupt
    study = optuna.load_study(study_name="test", storage=storage)
    kept = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(kept) >= 2
    again = make_search(storage, clock, FakeProbe(clock, seconds=10), budget_s=100).run()
    assert not again.interrupted and len(again.trials) > len(out.trials)


def test_source_lever_in_the_space():
    from autotune.search.space import resize_can_matter

    assert resize_can_matter(1280, 640) and not resize_can_matter(1280, 800)
    assert DatasetSize(1, 1280 * 720, 720 / 1280).mean_long_side == pytest.approx(1280)
    args = (None, None, "96", None)
    plain = build_space(*args, cpu_only=True, usable_cores=2, baseline_imgsz=640, max_batch=32)
    assert "source" not in plain.to_dict()  # spaces without the lever keep their digests (and study names)
    both = build_space(*args, cpu_only=True, usable_cores=2, baseline_imgsz=640, max_batch=32,
                       source="original,resized")  # fmt: skip
    assert both.source == ("original", "resized") and both.params(BASELINE)["source"] == "original"
    assert Space.from_dict(both.to_dict()) == both and Space.from_dict(plain.to_dict()) == plain
    resized = BASELINE.with_(imgsz=96, source="resized")
    assert both.contains(resized) and not plain.contains(resized)
    assert both.params(resized)["source"] == "resized"
    with pytest.raises(UserError, match="source must be"):
        build_space(*args, cpu_only=True, usable_cores=2, baseline_imgsz=640, max_batch=32, source="smaller")
    with pytest.raises(UserError, match="source must be"):
        TrainConfig(source="small")


class FlakyStorage(optuna.storages.InMemoryStorage):
    """A storage that stops answering (a database server gone) once `broken` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if callable(attr) and not name.startswith("_") and super().__getattribute__("broken"):
            import sqlalchemy.exc

            raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception(f"server gone: {SECRET_URL}"))
        return attr


SECRET_URL = "postgresql://tuner:hunter2@db.example/studies"


def test_a_storage_that_stops_answering_ends_the_search_cleanly(monkeypatch):
    from autotune.search import runner

    clock, storage = FakeClock(), FlakyStorage()
    probe = FakeProbe(clock, seconds=30)

    def probe_then_break(c, w, o, on_progress=None):
        if len(probe.calls) == 3:  # the baseline (trial 0 reuses it) and trials 1 and 2 are stored; then it goes
            storage.broken = True
        return probe(c, w, o, on_progress)

    search = make_search(storage, clock, probe_then_break, budget_s=600)
    search.s = replace(search.s, storage=SECRET_URL)
    out = search.run()  # no exception: the outcome says why it stopped
    assert "storage stopped answering" in out.stop_reason and "hunter2" not in out.stop_reason
    assert not out.interrupted and all("hunter2" not in n for n in out.notes)
    storage.broken = False
    done = [t for t in optuna.load_study(study_name="test", storage=storage).trials if t.state.name == "COMPLETE"]
    assert len(done) == 3  # every trial that finished before the storage went is kept
    monkeypatch.setattr(runner, "autotune_alive", lambda pid: False)  # the next start is another process
    again = make_search(storage, clock, probe, budget_s=0)
    assert not [t for t in again.study.trials if t.state.name == "RUNNING"]  # the orphan was failed and queued again
    assert any("left running" in n for n in again.notes)


def test_ctrl_c_during_the_baseline_probe_ends_with_the_summary():
    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()

    def interrupted(c, w, o, on_progress=None):
        raise KeyboardInterrupt

    out = make_search(storage, clock, interrupted, budget_s=600).run()
    assert out.interrupted and "during the baseline probe" in out.stop_reason
    assert out.baseline is None and out.trials == ()


def test_a_worker_joining_a_study_samples_with_a_seed_of_its_own():
    """Two hosts on one study: the first samples with the given seed, the next with one derived from it and the
    worker, so they do not propose the same first trials."""
    from autotune.search.rules import worker_seed

    clock, storage = FakeClock(), optuna.storages.InMemoryStorage()
    first = make_search(storage, clock, FakeProbe(clock))
    other = make_search(storage, clock, FakeProbe(clock), machine=replace(MACHINE, hostname="other-host"))
    alone = make_search(optuna.storages.InMemoryStorage(), clock, FakeProbe(clock))
    assert worker_seed(0, "a:1") == worker_seed(0, "a:1") != worker_seed(0, "b:1") != worker_seed(1, "a:1")

    def first_params(search):
        return [search.suggest(search.study.ask()).label() for _ in range(3)]

    assert first_params(first) == first_params(alone)  # the study's first worker: the seed as given
    assert first_params(other) != first_params(alone)
