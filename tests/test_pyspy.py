"""py-spy recording: parsing collapsed stacks, failure messages, a fake py-spy, and one real recording."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autotune.measure import pyspy
from autotune.measure.pyspy import (
    NOT_FOUND_MESSAGE,
    NOT_PERMITTED_MESSAGE,
    FunctionTime,
    SpyRecorder,
    explain_failure,
    parse_collapsed,
    short_location,
    top_functions,
)

# As py-spy 0.4.3 writes them (--format raw --function; the last two lines with --threads --subprocesses).
RAW = """\
<module> (t.py:1);Dataset.__getitem__ (ultralytics/data/base.py:361);load_mosaic (ultralytics/data/augment.py:520) 30
<module> (train.py:1);Dataset.__getitem__ (ultralytics/data/base.py:361);imread (ultralytics/utils/patches.py:20) 50
<module> (train.py:1);random_perspective (/usr/lib/python3/site-packages/ultralytics/data/augment.py:700) 15
<module> (train.py:1);Dataset.__getitem__ (ultralytics/data/base.py:361) 5
process 7:"python a;b.py";thread (7): MainThread;<module> (train.py:1);imread (ultralytics/utils/patches.py:20) 10
process 7:"python train.py";thread (0x7F3A2B1C0740) 4
"""


def test_parse_collapsed_counts_the_leaf_only() -> None:
    counts = parse_collapsed(RAW + "garbage line\n\n")
    assert counts == {
        ("load_mosaic", "ultralytics/data/augment.py:520"): 30,
        ("imread", "ultralytics/utils/patches.py:20"): 60,  # 50 + 10 behind process/thread frames
        ("random_perspective", "ultralytics/data/augment.py:700"): 15,
        ("Dataset.__getitem__", "ultralytics/data/base.py:361"): 5,
    }  # the stack of pseudo frames only (4) has no code leaf


def test_top_functions_ranks_and_shares() -> None:
    counts = parse_collapsed(RAW)
    top = top_functions(counts, n=2)
    assert top == (
        FunctionTime("imread", "ultralytics/utils/patches.py:20", 60, 60 / 110),
        FunctionTime("load_mosaic", "ultralytics/data/augment.py:520", 30, 30 / 110),
    )
    # Against all samples (114, the leafless 4 included), as SpyRecorder reports it.
    assert top_functions(counts, n=1, total=114)[0].share == pytest.approx(60 / 114)
    assert top_functions({}, n=10) == ()


def test_frames_without_line_and_odd_paths() -> None:
    counts = parse_collapsed(
        "a (x.py:1);cv_resize (libopencv.so) 3\na (/home/me/my (copy)/x.py:2) 2\n<listcomp> (/tmp/y.py:9) 1\n"
    )
    assert counts == {("cv_resize", "libopencv.so"): 3, ("a", "x.py:2"): 2, ("<listcomp>", "y.py:9"): 1}


def test_short_location() -> None:
    assert short_location("/venv/lib/python3.11/site-packages/cv2/__init__.py", 5) == "cv2/__init__.py:5"
    assert short_location("/src/ultralytics/ultralytics/data/augment.py", 520) == "ultralytics/data/augment.py:520"
    assert short_location("/tmp/scratch/busy.py", 3) == "busy.py:3"
    assert short_location("json/decoder.py", 353) == "json/decoder.py:353"  # py-spy's own shortening is kept


# What py-spy 0.4.3 printed here, attaching as an unprivileged user, without CAP_SYS_PTRACE, to a dead pid.
SPY_NOT_ROOT = "Permission Denied: Try running again with elevated permissions by going 'sudo env \"PATH=$PATH\" !!'"
SPY_NO_CAP = (
    "Error: Failed to get process executable name. Check that the process is running.\n\nCaused by:\n"
    "    0: Permission denied (os error 13)\n    1: Permission denied (os error 13)\n"
)
SPY_NO_PID = (
    "Error: Failed to get process executable name. Check that the process is running.\n\nCaused by:\n"
    "    0: No such file or directory (os error 2)\n"
)


def test_explain_failure() -> None:
    assert explain_failure(SPY_NOT_ROOT, 5) == NOT_PERMITTED_MESSAGE
    assert explain_failure(SPY_NO_CAP, 5) == NOT_PERMITTED_MESSAGE
    assert explain_failure(SPY_NO_PID, 5) == "process 5 was not running when py-spy started"
    not_python = explain_failure("Error: Failed to find python version", 5)
    assert not_python == "process 5 is not a Python process py-spy can read"
    odd = explain_failure("Error: Something new\n\nCaused by:\n    0: because\n", 5)
    assert odd == "py-spy failed on process 5: Something new (because)"
    assert "\n" not in explain_failure("x\n" * 500, 5)


def test_missing_binary_is_one_line_not_an_exception(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pyspy, "py_spy_path", lambda: None)
    rec = SpyRecorder([os.getpid()], tmp_path)
    rec.start()
    report = rec.stop()
    assert not report.available
    assert report.message == NOT_FOUND_MESSAGE and "py-spy" in report.message
    assert report.top == () and report.pids == (os.getpid(),)
    assert report.to_dict()["message"] == NOT_FOUND_MESSAGE


def test_stop_without_start_does_not_raise(tmp_path: Path) -> None:
    report = SpyRecorder([1], tmp_path).stop()
    assert not report.available and report.message


# A stand-in for py-spy: writes collapsed stacks to --output when it gets SIGINT, as py-spy does.
FAKE_SPY = """\
#!{python}
import signal, sys, time
args = sys.argv[1:]
out = args[args.index("--output") + 1]
pid = args[args.index("--pid") + 1]
if pid == "2":
    sys.stderr.write({denied!r})
    sys.exit(1)
def write(*_):
    with open(out, "w") as f:
        f.write("<module> (w.py:1);decode (w.py:5) 3\\n<module> (w.py:1);augment (w.py:9) 1\\n")
    sys.exit(0)
signal.signal(signal.SIGINT, write)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def fake_spy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    exe = tmp_path / "fake-py-spy"
    exe.write_text(FAKE_SPY.format(python=sys.executable, denied=SPY_NOT_ROOT))
    exe.chmod(0o755)
    monkeypatch.setattr(pyspy, "py_spy_path", lambda: str(exe))
    return exe


def _wait_ready(rec: SpyRecorder, pid: int, text: str = "ready") -> None:
    """Wait until the fake wrote `text` into its log: 'ready' comes after it installed its SIGINT handler."""
    log = rec.out_dir / f"{pid}.log"
    deadline = time.monotonic() + 10
    while text not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.02)


def test_fake_spy_sigint_parse_and_aggregate(fake_spy: Path, tmp_path: Path) -> None:
    rec = SpyRecorder([11, 12], tmp_path / "spy")
    rec.start()
    _wait_ready(rec, 11)
    _wait_ready(rec, 12)
    report = rec.stop(top_n=1)
    assert report.available and report.message == ""
    assert report.total_samples == 8
    assert report.top == (FunctionTime("decode", "w.py:5", 6, 0.75),)
    assert rec.stop() is report  # stop twice: the same report


def test_fake_spy_not_permitted(fake_spy: Path, tmp_path: Path) -> None:
    rec = SpyRecorder([2], tmp_path / "spy")
    rec.start()
    _wait_ready(rec, 2, "Permission Denied")
    report = rec.stop()
    assert report == pyspy.unavailable(NOT_PERMITTED_MESSAGE, (2,))

    partial = SpyRecorder([2, 11], tmp_path / "spy2")
    partial.start()
    _wait_ready(partial, 2, "Permission Denied")
    _wait_ready(partial, 11)
    report = partial.stop()
    assert report.available and report.total_samples == 4
    assert report.message == f"py-spy recorded 1 of 2 processes; {NOT_PERMITTED_MESSAGE}"


CHILD = textwrap.dedent(
    """\
    import time
    import numpy as np
    try:
        import cv2
    except ImportError:
        cv2 = None
    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    buf = cv2.imencode(".jpg", img)[1] if cv2 is not None else None

    def busy_decode():
        if cv2 is not None:
            return cv2.resize(cv2.imdecode(buf, cv2.IMREAD_COLOR), (160, 120))
        return np.sort(img, axis=None)

    print("ready", flush=True)
    end = time.monotonic() + 6
    while time.monotonic() < end:
        busy_decode()
    """
)


def test_real_recording_finds_the_busy_function(tmp_path: Path) -> None:
    if pyspy.py_spy_path() is None:
        pytest.skip(NOT_FOUND_MESSAGE)
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        rec = SpyRecorder([child.pid], tmp_path / "spy", rate_hz=50)
        rec.start()
        time.sleep(2.0)  # ~100 samples at 50 Hz
        report = rec.stop()
    finally:
        child.kill()
        child.wait()
    if report.message == NOT_PERMITTED_MESSAGE:
        pytest.skip(f"py-spy cannot attach here: {report.message}")
    assert report.available, report.message
    assert report.message == ""
    assert report.total_samples > 20
    names = [f.function for f in report.top]
    assert "busy_decode" in names, report.top
    busy = report.top[names.index("busy_decode")]
    assert busy.location.startswith("<string>:") and busy.share > 0.5
    assert report.to_dict()["top"][0]["own_samples"] == report.top[0].own_samples
