"""Functions that the isolation tests run in a child process (imported there through PYTHONPATH)."""

import ctypes
import json
import multiprocessing
import os
import subprocess
import time
from pathlib import Path


def echo(request, heartbeat):
    heartbeat({"phase": "work", "eta_s": 0.1})
    return {"echo": request["value"], "pid": os.getpid()}


def raise_error(request, heartbeat):
    raise ValueError("bad things happened\nsecond line")


def cuda_oom(request, heartbeat):
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


def segfault(request, heartbeat):
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def _sleep_forever():
    time.sleep(600)


def hang(request, heartbeat):
    """Start two kinds of child processes (like loader workers), record their pids, then hang silently."""
    worker = multiprocessing.get_context("fork").Process(target=_sleep_forever)
    worker.start()
    sleeper = subprocess.Popen(["sleep", "600"])
    Path(request["pid_file"]).write_text(json.dumps([os.getpid(), worker.pid, sleeper.pid]))
    time.sleep(600)


def slow_but_progressing(request, heartbeat):
    """Longer than the start-up allowance, but every beat says how long is left: must not be killed."""
    for i in range(request["beats"]):
        heartbeat({"phase": "measure", "iter": i, "eta_s": 0.5})
        time.sleep(0.4)
    return {"done": True}


def stall_after_progress(request, heartbeat):
    heartbeat({"phase": "measure", "iter": 0, "eta_s": 0.1})
    time.sleep(600)


def beats_forever(request, heartbeat):
    for i in range(10_000):
        heartbeat({"phase": "measure", "iter": i, "eta_s": 1.0})
        time.sleep(0.05)


def beat_then_hang(request, heartbeat):
    """Start a worker (like a loader's), record the pids, beat once, then hang: the caller decides what happens."""
    worker = multiprocessing.get_context("fork").Process(target=_sleep_forever)
    worker.start()
    Path(request["pid_file"]).write_text(json.dumps([os.getpid(), worker.pid]))
    heartbeat({"phase": "measure", "iter": 1, "eta_s": 60})
    time.sleep(600)
