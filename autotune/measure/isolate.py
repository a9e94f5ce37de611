"""Run a function in its own subprocess with a timeout; turn a crash, an OOM kill or a hang into a status.

The child runs `python -m autotune.measure.isolate TARGET WORKDIR`: it reads WORKDIR/request.json, calls TARGET
(`module:function`, taking the request and a heartbeat callback), and writes WORKDIR/result.json. Heartbeats
go to WORKDIR/progress.jsonl; each may carry `eta_s`, the child's own estimate of the seconds it still needs,
which moves the deadline: a slow but progressing probe is measured, a silent one is stopped.
The child leads its own process group, so its data-loader workers are killed with it and none is left behind.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from autotune.offline import SWITCHES
from autotune.records.status import CRASHED, OK, OOM, PRUNED, TIMEOUT
from autotune.status import classify_exception

POLL_S = 0.1
PARENT_ENV = "AUTOTUNE_PARENT_PID"  # the caller's pid, which the child watches
PARENT_POLL_S = 0.2  # how often the child checks that its caller still lives


@dataclass(frozen=True)
class TimeoutPolicy:
    startup_s: float = 300.0  # until the first heartbeat that carries an eta
    stall_floor_s: float = 60.0  # least silence tolerated once heartbeats flow
    eta_factor: float = 3.0  # a window may run this many times slower than the child's own estimate
    slack_s: float = 120.0  # validation batch, teardown, result writing
    hard_s: float | None = None  # absolute cap, if the user gave one


@dataclass(frozen=True)
class Outcome:
    status: str  # ok (the target returned) | crashed | timeout | oom | pruned (stopped by on_progress)
    result: dict[str, Any] | None
    reason: str
    returncode: int | None
    duration_s: float
    log_path: str
    leftover_pids: tuple[int, ...]  # processes of the group still alive after cleanup (should be empty)
    oom_killed: bool  # the kernel's OOM killer fired while the child ran


@contextlib.contextmanager
def scratch_dir(root: Path, prefix: str, keep: bool = False) -> Iterator[Path]:
    """A fresh folder for one isolated run (its request, log, staged files), removed afterwards unless kept."""
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield work
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _oom_kills() -> int:
    """Kernel OOM kills so far: this cgroup's count where there is one, else the machine's."""
    for path, key in (("/sys/fs/cgroup/memory.events", "oom_kill"), ("/proc/vmstat", "oom_kill")):
        try:
            for line in Path(path).read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == key:
                    return int(v)
        except (OSError, ValueError):
            continue
    return 0


def _group_members(pgid: int) -> list[int]:
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return out


def _kill_group(pgid: int, grace_s: float = 3.0) -> tuple[int, ...]:
    """SIGTERM the group, then SIGKILL whatever is left; return pids still alive after that."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_members(pgid):
            time.sleep(0.05)
        if not _group_members(pgid):
            break
    return tuple(_group_members(pgid))


def _read_beats(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1  # only whole lines; a half-written one waits for the next poll
    beats = []
    for line in data[:end].splitlines():
        try:
            beats.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return beats, offset + end


def run_isolated(
    target: str,
    request: dict[str, Any],
    workdir: Path,
    policy: TimeoutPolicy,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> Outcome:
    """Run target(request, heartbeat) in a child process; always return an Outcome."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "request.json").write_text(json.dumps(request))
    result_path, beats_path, log_path = workdir / "result.json", workdir / "progress.jsonl", workdir / "probe.log"
    env = {**os.environ, **SWITCHES, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())}
    oom_before = _oom_kills()
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autotune.measure.isolate", target, str(workdir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # own process group: killpg reaches the loader workers too
        )
    pgid = proc.pid
    deadline = t0 + policy.startup_s
    hard = t0 + policy.hard_s if policy.hard_s else None
    offset, killed_by_us, why = 0, False, ""
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
            beats, offset = _read_beats(beats_path, offset)
            now = time.monotonic()
            for beat in beats:
                if on_progress and on_progress(beat):  # the caller wants it stopped (a search pruning it)
                    why = "pruned"
                if "eta_s" in beat:
                    allowed = max(policy.stall_floor_s, policy.eta_factor * float(beat["eta_s"])) + policy.slack_s
                    deadline = now + allowed
            if why:
                pass
            elif hard is not None and now > hard:
                why = f"ran past the hard limit of {policy.hard_s:.0f} s"
            elif now > deadline:
                why = f"no progress within its predicted time ({now - t0:.0f} s elapsed)"
            if why:
                killed_by_us = True
                break
    except BaseException:  # Ctrl-C, SIGTERM/SIGHUP (raised as interrupts), or the caller's own error (a storage
        _kill_group(pgid)  # failing inside on_progress): the probe and its loader workers never outlive this call
        proc.wait()
        raise
    leftovers = _kill_group(pgid) if killed_by_us or _group_members(pgid) else ()
    returncode = proc.wait()
    duration = time.monotonic() - t0
    oom = _oom_kills() > oom_before

    def outcome(status: str, result: dict[str, Any] | None, reason: str) -> Outcome:
        return Outcome(status, result, reason, returncode, duration, str(log_path), leftovers, oom)

    if killed_by_us and why == "pruned":
        return outcome(PRUNED, None, "stopped by the caller")
    if killed_by_us:
        return outcome(TIMEOUT, None, f"timeout: the probe {why}; killed with its loader workers")
    if result_path.exists():
        payload = json.loads(result_path.read_text())
        if "error" in payload:  # the child classified its own exception (status.classify_exception)
            return outcome(payload.get("status", CRASHED), None, payload["error"])
        return outcome(OK, payload["result"], "")
    if returncode is not None and returncode < 0:
        sig = signal.Signals(-returncode)
        if sig == signal.SIGKILL:
            if oom:
                return outcome(OOM, None, "killed by the kernel's OOM killer (out of memory)")
            return outcome(CRASHED, None, "killed by SIGKILL from outside autotune")
        return outcome(CRASHED, None, f"the probe process died from signal {sig.name} ({_signal_text(sig)})")
    return outcome(CRASHED, None, f"the probe process exited with code {returncode}: {_last_error_line(log_path)}")


def _signal_text(sig: signal.Signals) -> str:
    return {signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "abort", signal.SIGBUS: "bus error"}.get(
        sig, signal.strsignal(sig) or sig.name
    )


def _last_error_line(log_path: Path) -> str:
    try:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip() if lines else "no output"


def _die_with_parent(parent: int) -> None:
    """The child leads its own process group (so Ctrl-C in a terminal does not reach it, and the caller can kill
    it with its loader workers). If the caller dies anyway (SIGKILL, a crash), nobody would: so the child watches
    its parent and kills its whole group the moment it is gone. A thread, not prctl(PR_SET_PDEATHSIG): that
    signal would kill the child alone and leave its loader workers running."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            time.sleep(PARENT_POLL_S)

    threading.Thread(target=watch, name="autotune-parent-watch", daemon=True).start()


def _child(target: str, workdir: Path) -> int:
    if os.environ.get(PARENT_ENV, "").isdigit():
        _die_with_parent(int(os.environ[PARENT_ENV]))
    request = json.loads((workdir / "request.json").read_text())
    beats = open(workdir / "progress.jsonl", "a", buffering=1)  # noqa: SIM115 (lives as long as the child)

    def heartbeat(beat: dict[str, Any]) -> None:
        beats.write(json.dumps({**beat, "t": time.time()}) + "\n")

    module, _, func = target.partition(":")
    fn = getattr(importlib.import_module(module), func)
    try:
        payload: dict[str, Any] = {"result": fn(request, heartbeat)}
    except BaseException as e:  # reported to the parent as the probe's status, with the traceback in the log
        import traceback

        traceback.print_exc()
        status, reason = classify_exception(e)
        payload = {"error": reason, "status": status}
    tmp = workdir / "result.json.tmp"
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, workdir / "result.json")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    # os._exit: skip interpreter teardown, where lingering loader threads and CUDA contexts can hang or crash
    rc = _child(sys.argv[1], Path(sys.argv[2]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
