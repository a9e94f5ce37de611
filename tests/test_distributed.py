"""Two `autotune search` workers share one PostgreSQL study; a worker on other hardware is refused."""

import json
import os
import subprocess
import sys

import optuna
import pytest
from pg import postgres_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

BUDGET = "150s"  # each worker keeps time for its side-by-side phase (4 probes) at the end


def _cmd(tiny_demo, url: str, study: str) -> list[str]:
    cmd = [sys.executable, "-m", "autotune.cli", "search", "--budget", BUDGET, "--data", str(tiny_demo)]
    cmd += ["--imgsz", "64", "--batch", "2-8", "--device", "cpu", "--iters", "4"]
    return [*cmd, "--storage", url, "--study", study, "--json"]


def test_two_workers_share_a_study(postgres_server, tiny_demo, tmp_path):  # noqa: F811
    url = postgres_server.url
    env = {**os.environ, "AUTOTUNE_CACHE": str(tmp_path / "cache")}  # one host: one shared probe lock
    procs = [
        subprocess.Popen(
            _cmd(tiny_demo, url, "shared"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert postgres_server.password not in out + err  # the password is never printed
    study = optuna.load_study(study_name="shared", storage=url)
    trials = study.get_trials()
    workers = {t.user_attrs.get("worker") for t in trials}
    assert len(workers) == 2, workers  # both contributed
    assert all(t.state.is_finished() for t in trials)  # none left running, none lost
    reported = [json.loads(out) for out, _ in outputs]
    assert max(len(r["trials"]) for r in reported) <= len(trials)
    for r in reported:
        assert postgres_server.password not in json.dumps(r)
        assert "***" in r["storage"]
        profile = tmp_path / r["profile"]
        assert postgres_server.password not in profile.read_text()
        assert postgres_server.password not in profile.with_suffix(".json").read_text()
    # the report of the shared study, and every file autotune wrote (reports, probe logs): no password anywhere
    report = subprocess.run(
        [sys.executable, "-m", "autotune", "report", "--storage", url, "--study", "shared", "--out", "rep", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    assert postgres_server.password not in report.stdout + report.stderr
    written = [f for f in tmp_path.rglob("*") if f.is_file() and f.suffix in (".md", ".html", ".json", ".log", ".yaml")]
    assert any(f.name == "report.md" for f in written) and any(f.suffix == ".log" for f in written)
    for f in written:
        assert postgres_server.password not in f.read_text(errors="replace"), f


def test_a_worker_on_other_hardware_is_refused(postgres_server, tiny_demo, tmp_path):  # noqa: F811
    from dataclasses import replace

    from autotune.measure.machine import fingerprint
    from autotune.records.config import TrainConfig, Workload
    from autotune.records.search import Space, StudyMeta
    from autotune.search import store

    url = postgres_server.url
    other = replace(fingerprint(), cpu_model="Some other CPU", usable_cores=96)
    store.create(store.open_storage(url), "elsewhere", None, None).write_meta(
        StudyMeta(
            machine=other,
            machine_id=other.identity_hash(),
            workload=Workload(str(tiny_demo)),
            n_train=96,
            baseline=TrainConfig(),
            space=Space(2, 8, 2, (64,), ("none", "disk", "ram"), ("original", "resized")),
        )
    )
    env = {**os.environ, "AUTOTUNE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        _cmd(tiny_demo, url, "elsewhere"), capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 2
    assert "not comparable" in proc.stderr and "Some other CPU" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # refused before anything else is said
    assert postgres_server.password not in proc.stdout + proc.stderr
