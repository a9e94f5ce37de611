"""The throwaway PostgreSQL server (tests/pg.py) that distributed `autotune search` tests share a study through."""

import optuna
import pytest
import sqlalchemy
from pg import postgres_server  # noqa: F401
from sqlalchemy.exc import OperationalError

pytestmark = pytest.mark.integration

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_study_is_shared_through_postgres(postgres_server):  # noqa: F811
    url = postgres_server.url
    assert url.startswith("postgresql://autotune:s3cret-Pa55@127.0.0.1:")
    assert url.endswith(f":{postgres_server.port}/autotune")

    study = optuna.create_study(storage=url, study_name="t", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: trial.suggest_float("x", -1.0, 1.0) ** 2, n_trials=4)

    other = optuna.load_study(study_name="t", storage=url)  # its own storage and connections
    assert len(other.trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in other.trials)
    assert [t.params for t in other.trials] == [t.params for t in study.trials]
    assert other.best_value == pytest.approx(study.best_value)


def test_tcp_needs_the_password_and_listens_on_loopback_only(postgres_server):  # noqa: F811
    engine = sqlalchemy.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT current_user")).scalar() == "autotune"
            assert conn.execute(sqlalchemy.text("SHOW listen_addresses")).scalar() == "127.0.0.1"
    finally:
        engine.dispose()

    for url in (postgres_server.url_with("wrong-password"), postgres_server.url.replace(":s3cret-Pa55@", "@")):
        bad = sqlalchemy.create_engine(url, connect_args={"passfile": "/dev/null"})  # no ~/.pgpass fallback
        try:
            with pytest.raises(OperationalError, match="password"):
                bad.connect()
        finally:
            bad.dispose()
