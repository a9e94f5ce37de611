"""A probe that crashes, hangs or runs out of memory comes back as a status, with nothing left running."""

import json
import os
from pathlib import Path

import psutil
import pytest

from autotune.measure.isolate import TimeoutPolicy, run_isolated

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _targets_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))


def test_returns_the_result(tmp_path):
    beats = []
    out = run_isolated("isolate_targets:echo", {"value": 42}, tmp_path, TimeoutPolicy(startup_s=60), beats.append)
    assert out.status == "ok"
    assert out.result["echo"] == 42
    assert out.result["pid"] != os.getpid()
    assert beats and beats[0]["phase"] == "work"
    assert out.leftover_pids == ()


def test_exception_is_crashed_with_its_first_line(tmp_path):
    out = run_isolated("isolate_targets:raise_error", {}, tmp_path, TimeoutPolicy(startup_s=60))
    assert out.status == "crashed"
    assert out.reason == "ValueError: bad things happened"
    assert "Traceback" in Path(out.log_path).read_text()


def test_out_of_memory_error_is_oom(tmp_path):
    out = run_isolated("isolate_targets:cuda_oom", {}, tmp_path, TimeoutPolicy(startup_s=60))
    assert out.status == "oom"
    assert "out of memory" in out.reason


def test_segfault_is_crashed(tmp_path):
    out = run_isolated("isolate_targets:segfault", {}, tmp_path, TimeoutPolicy(startup_s=60))
    assert out.status == "crashed"
    assert "SIGSEGV" in out.reason and "segmentation fault" in out.reason
    assert out.leftover_pids == ()


def test_hang_is_timeout_and_leaves_no_process(tmp_path):
    pid_file = tmp_path / "pids.json"
    out = run_isolated(
        "isolate_targets:hang", {"pid_file": str(pid_file)}, tmp_path / "work", TimeoutPolicy(startup_s=8)
    )
    assert out.status == "timeout"
    assert "killed" in out.reason
    assert out.leftover_pids == ()
    pids = json.loads(pid_file.read_text())
    assert len(pids) == 3
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def test_progress_moves_the_deadline(tmp_path):
    policy = TimeoutPolicy(startup_s=3, stall_floor_s=2, slack_s=0.5)
    out = run_isolated("isolate_targets:slow_but_progressing", {"beats": 12}, tmp_path, policy)
    assert out.status == "ok", out.reason  # ~5 s in all, beyond the 3 s start-up allowance
    assert out.duration_s > 3


def test_silence_after_progress_is_timeout(tmp_path):
    policy = TimeoutPolicy(startup_s=30, stall_floor_s=1, slack_s=1)
    out = run_isolated("isolate_targets:stall_after_progress", {}, tmp_path, policy)
    assert out.status == "timeout"
    assert out.duration_s < 25


def test_hard_limit(tmp_path):
    policy = TimeoutPolicy(startup_s=60, hard_s=2)
    out = run_isolated("isolate_targets:hang", {"pid_file": str(tmp_path / "p.json")}, tmp_path / "w", policy)
    assert out.status == "timeout" and "hard limit" in out.reason


def test_the_caller_can_stop_a_running_child(tmp_path):
    seen = []

    def stop_after_three(beat):
        seen.append(beat)
        return len(seen) >= 3

    out = run_isolated("isolate_targets:beats_forever", {}, tmp_path, TimeoutPolicy(startup_s=60), stop_after_three)
    assert out.status == "pruned"
    assert out.leftover_pids == ()
    assert out.duration_s < 30


def _alive(pids):
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_an_error_in_the_callers_progress_handler_kills_the_group(tmp_path):
    """A search whose storage fails while a probe beats (say `database is locked` from the pruner): the error
    reaches the caller, and the probe with its workers is gone."""
    pid_file = tmp_path / "pids.json"

    def on_progress(beat):
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="database is locked"):
        run_isolated("isolate_targets:beat_then_hang", {"pid_file": str(pid_file)}, tmp_path / "w",
                     TimeoutPolicy(startup_s=60), on_progress)  # fmt: skip
    assert _alive(json.loads(pid_file.read_text())) == []


def test_the_child_dies_with_its_caller(tmp_path):
    """SIGKILL of the caller (no chance to clean up): the child, in its own process group, kills that group."""
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "pids.json"
    code = (
        "import sys; from pathlib import Path; from autotune.measure.isolate import TimeoutPolicy, run_isolated; "
        f"run_isolated('isolate_targets:beat_then_hang', {{'pid_file': {str(pid_file)!r}}}, Path({str(tmp_path)!r}) "
        "/ 'w', TimeoutPolicy(startup_s=60))"
    )
    caller = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = json.loads(pid_file.read_text())
    caller.kill()
    caller.wait()
    deadline = time.monotonic() + 5
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(pids) == []  # the probe and its worker, within a few seconds
