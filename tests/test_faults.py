"""Faults while a real search runs: SIGTERM, SIGHUP and SIGKILL of the search, a probe killed mid-trial. Each must
leave no probe process behind, lose no trial and leave none RUNNING once the study is opened again, and print no
traceback (slow tier: real probes on a tiny workload)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest

pytestmark = pytest.mark.integration


def _search(tiny_demo: Path, db: str, budget: str = "300s") -> list[str]:
    cmd = [sys.executable, "-m", "autotune", "search", "--budget", budget, "--data", str(tiny_demo), "--imgsz", "64"]
    return [*cmd, "--batch", "2-8", "--device", "cpu", "--iters", "4", "--storage", db, "--study", "faults", "--json"]


def _probes(cache: Path) -> list[psutil.Process]:
    """Live probe processes (and their loader workers) started with this test's AUTOTUNE_CACHE."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmdline = p.info["cmdline"] or []
            ours = any("autotune" in c for c in cmdline) and "search" not in cmdline and p.pid != os.getpid()
            if ours and p.environ().get("AUTOTUNE_CACHE") == str(cache):
                out.append(p)
        except psutil.Error:
            continue
    return out


def _running_trials(db: str) -> list[int]:
    try:
        study = optuna.load_study(study_name="faults", storage=db)
    except KeyError:
        return []
    return [t.number for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]


def _wait(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def env(tmp_path):
    cache = tmp_path / "cache"
    return cache, {**os.environ, "AUTOTUNE_CACHE": str(cache)}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_a_signal_to_the_search_leaves_no_probe_and_no_running_trial(tiny_demo, tmp_path, env, sig):
    cache, environ = env
    db = f"sqlite:///{tmp_path / 'studies.db'}"
    proc = subprocess.Popen(_search(tiny_demo, db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ,
                            cwd=tmp_path, text=True)  # fmt: skip
    try:
        _wait(lambda: _running_trials(db) and _probes(cache), 180, "a trial's probe to start")
        time.sleep(1.0)  # inside the probe: staging or training
        proc.send_signal(sig)
        out, errs = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig)
    _wait(lambda: not _probes(cache), 10, "the probe and its loader workers to go")  # within a few seconds
    assert "Traceback" not in errs
    if sig != signal.SIGKILL:  # handled like Ctrl-C: the trial marked, the summary printed
        summary = json.loads(out)
        assert summary["interrupted"] and "interrupted" in summary["stop_reason"]
        assert _running_trials(db) == []
    # the next start: nothing RUNNING (a trial a SIGKILLed search left is failed and queued again)
    again = subprocess.run(_search(tiny_demo, db, budget="1s"), capture_output=True, text=True, env=environ,
                           cwd=tmp_path, timeout=300)  # fmt: skip
    assert "Traceback" not in again.stderr, again.stderr[-2000:]
    assert _running_trials(db) == []
    study = optuna.load_study(study_name="faults", storage=db)
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    assert "FAIL" in states  # the interrupted trial is kept as failed, not lost
    assert not _probes(cache)


def test_a_probe_killed_mid_trial_is_a_crashed_trial_and_the_search_goes_on(tiny_demo, tmp_path, env):
    cache, environ = env
    db = f"sqlite:///{tmp_path / 'studies.db'}"
    proc = subprocess.Popen(_search(tiny_demo, db, budget="150s"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environ, cwd=tmp_path, text=True)  # fmt: skip
    try:
        _wait(lambda: _running_trials(db) and _probes(cache), 180, "a trial's probe to start")
        time.sleep(1.0)
        killed = set(_running_trials(db))
        for p in _probes(cache):  # the probe and its workers, as the kernel's OOM killer or a user would
            p.kill()
        # the search goes on: the next trial's probe starts; then it is stopped (its budget would take minutes)
        _wait(lambda: set(_running_trials(db)) - killed and _probes(cache), 180, "the next trial's probe")
        proc.send_signal(signal.SIGTERM)
        out, errs = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, errs[-2000:]
    assert "Traceback" not in errs
    summary = json.loads(out)
    assert any(t["status"] == "crashed" for t in summary["trials"])  # said as what it was
    assert _running_trials(db) == [] and not _probes(cache)


FAULTS = Path(__file__).parent / "faults"  # a sitecustomize that injects the fault named by AUTOTUNE_FAULT


@pytest.mark.parametrize(
    ("cache", "fault", "reason"),
    [("disk", "disk_full", "wrote 2 of"), ("ram", "ram_short", "dropped cache=ram")],
)
def test_a_cache_that_does_not_fit_while_probing_is_infeasible_not_ok(tiny_demo, tmp_path, env, cache, fault, reason):
    """A disk that fills up while the .npy cache is written (Ultralytics deletes the failed files and only warns),
    and RAM too short for cache=ram (Ultralytics silently trains without a cache): said as what they are."""
    cache_dir, environ = env
    environ = {**environ, "PYTHONPATH": f"{FAULTS}{os.pathsep}{environ.get('PYTHONPATH', '')}", "AUTOTUNE_FAULT": fault}
    cmd = [sys.executable, "-m", "autotune", "probe", "--data", str(tiny_demo), "--imgsz", "64", "--batch", "4",
           "--workers", "1", "--iters", "3", "--device", "cpu", "--cache", cache, "--json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]  # measured, not ok
    result = json.loads(proc.stdout)
    assert result["status"] == "infeasible" and reason in result["reason"], result["reason"]
    assert "Traceback" not in proc.stderr
    assert not _probes(cache_dir)


def test_no_network_and_no_install_at_run_time(tiny_demo, tmp_path, env):
    """Importing autotune and running a verb (its probe subprocess included) looks up no host, connects nowhere and
    installs nothing, even on a fresh machine (no Ultralytics settings yet) and with a non-image file named .jpg
    in the dataset (which made Ultralytics try to pip-install pi-heif)."""
    _, environ = env
    data = Path(tiny_demo).parent
    fake = data / "images" / "train" / "zz_not_an_image.jpg"
    fake.write_bytes(b"this is not a JPEG")
    log = tmp_path / "net.log"
    path = f"{FAULTS}{os.pathsep}{environ.get('PYTHONPATH', '')}"
    environ = {**environ, "PYTHONPATH": path, "AUTOTUNE_FAULT": "network", "AUTOTUNE_NET_LOG": str(log),
               "YOLO_CONFIG_DIR": str(tmp_path / "fresh-settings")}  # fmt: skip
    for var in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL"):  # autotune sets them itself
        environ.pop(var, None)
    db = f"sqlite:///{tmp_path / 'studies.db'}"
    try:
        cmd = [sys.executable, "-m", "autotune", "probe", "--data", str(tiny_demo), "--imgsz", "64", "--batch", "4",
               "--workers", "1", "--iters", "3", "--device", "cpu", "--json"]  # fmt: skip
        probe = subprocess.run(cmd, capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=300)
        search = subprocess.run(_search(tiny_demo, db, budget="20s"), capture_output=True, text=True, env=environ,
                                cwd=tmp_path, timeout=300)  # fmt: skip
        report = subprocess.run([sys.executable, "-m", "autotune", "report", "--storage", db], capture_output=True,
                                text=True, env=environ, cwd=tmp_path, timeout=300)  # fmt: skip
    finally:
        fake.unlink()
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert json.loads(probe.stdout)["status"] == "ok"
    assert search.returncode in (0, 1) and report.returncode in (0, 2), search.stderr[-2000:] + report.stderr[-2000:]
    assert not log.exists(), log.read_text()  # nothing was looked up, connected to or installed
