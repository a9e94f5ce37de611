"""Record data-loader worker processes with py-spy and list the functions they spend their own time in.

py-spy samples a running Python process from outside (it reads the process's memory, which needs ptrace
permission). One `py-spy record --format raw` runs per worker pid; each writes "collapsed stacks" when it gets
SIGINT or when its worker exits:

    <module> (train.py:1);BaseDataset.__getitem__ (ultralytics/data/base.py:361);load_mosaic (ultralytics/...:520) 37

Frames run root to leaf, separated by ';', each `function (file:line)` (with --function, line is the function's first
line, so each function is one entry); the count after the last space is the number of samples with exactly that
stack. py-spy already shortens site-packages files to the package part ("numpy/...").
Only samples of threads that were running are written (no --idle), so a count is CPU time, not waiting.
C functions (cv2.imdecode, cv2.resize) have no Python frame: their time is the own time of the Python function that
called them. Where py-spy is missing or may not attach, the report says so in one line and nothing raises.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

NOT_FOUND_MESSAGE = "py-spy not found: pip install py-spy"
NOT_PERMITTED_MESSAGE = (
    "py-spy is not permitted to attach (needs ptrace: run as root or with CAP_SYS_PTRACE, "
    "e.g. docker run --cap-add SYS_PTRACE)"
)
STOP_TIMEOUT_S = 10.0  # py-spy writes its file within milliseconds of SIGINT; after this it is killed
MAX_MESSAGE_CHARS = 240  # the message is one line in a report

# Package roots a long path is cut back to, so "…/site-packages/ultralytics/data/augment.py" reads as the package part.
PACKAGE_ROOTS = ("ultralytics", "cv2", "torch", "torchvision", "numpy", "PIL", "albumentations", "autotune")

# `function (file:line)`, or `function (file)` with no line (native frames, --nolineno). Python names hold no " (",
# file paths may hold anything, so the name ends at the first " (".
_FRAME = re.compile(r"^(?P<function>[^ ].*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
# Frames py-spy adds that are not code: `process 123:"python train.py"` (--subprocesses), `thread (0x7F..)` and
# `thread (123): MainThread` (--threads).
_PSEUDO = re.compile(r'^(?:process \d+:".*"|thread \([0-9A-Fa-fx]+\)(?:: .*)?)$')
_PERMISSION = re.compile(r"permission denied|operation not permitted|os error 1\)|os error 13\)", re.IGNORECASE)


@dataclass(frozen=True)
class FunctionTime:
    """One function and the samples in which it was the innermost Python frame (its own time)."""

    function: str  # e.g. "load_mosaic" or "Mosaic._mosaic4" (py-spy writes qualified names)
    location: str  # e.g. "ultralytics/data/augment.py:520"
    own_samples: int  # samples where this frame was the leaf
    share: float  # own_samples / all samples of all recorded processes, 0..1


@dataclass(frozen=True)
class SpyReport:
    """What a recording found, or the one line that says why there is nothing."""

    available: bool
    message: str  # "" when fine; else one line for the user
    pids: tuple[int, ...]
    total_samples: int  # stack samples of running threads, summed over all pids
    top: tuple[FunctionTime, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "message": self.message,
            "pids": list(self.pids),
            "total_samples": self.total_samples,
            "top": [asdict(f) for f in self.top],
        }


def unavailable(message: str, pids: tuple[int, ...] = ()) -> SpyReport:
    """A report with nothing in it and the reason why."""
    return SpyReport(available=False, message=message, pids=pids, total_samples=0, top=())


def py_spy_path() -> str | None:
    """The py-spy executable: on PATH, or beside this interpreter (a venv's bin/ that was not activated)."""
    found = shutil.which("py-spy")
    if found:
        return found
    # Not resolved: a venv's python is a symlink to the base interpreter, whose folder has no py-spy.
    beside = Path(sys.executable).parent / ("py-spy.exe" if os.name == "nt" else "py-spy")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return None


def short_location(file: str, line: int | None) -> str:
    """'ultralytics/data/augment.py:520' for any path under a package root, else 'basename:line'."""
    path = file.replace("\\", "/")
    parts = path.split("/")
    short = None
    for marker in ("site-packages", "dist-packages"):
        if marker in parts[:-1]:
            short = "/".join(parts[len(parts) - parts[::-1].index(marker) :])
            break
    if short is None:
        roots = [i for i, p in enumerate(parts[:-1]) if p in PACKAGE_ROOTS]
        if roots:
            i = roots[0]
            while i + 2 < len(parts) and parts[i + 1] == parts[i]:
                i += 1  # a source checkout: ".../ultralytics/ultralytics/data/augment.py"
            short = "/".join(parts[i:])
        elif not path.startswith("/") and ":" not in path[:3]:
            short = path  # already relative: py-spy shortened it to the package part ("json/decoder.py")
        else:
            short = parts[-1]
    return f"{short}:{line}" if line is not None else short


def parse_frame(frame: str) -> tuple[str, str] | None:
    """(function, location) of one collapsed-stack frame; None for py-spy's process/thread frames and junk."""
    frame = frame.strip()
    if not frame or _PSEUDO.match(frame):
        return None
    m = _FRAME.match(frame)
    if m is None:
        return None
    line = m.group("line")
    return m.group("function"), short_location(m.group("file"), int(line) if line else None)


def parse_collapsed(text: str) -> dict[tuple[str, str], int]:
    """py-spy raw output ("frame;frame;...;leaf count" per line) -> {(function, location): own samples of the leaf}.

    The leaf is the last real code frame; a stack with none (only process/thread frames) is not counted here.
    """
    counts: dict[tuple[str, str], int] = {}
    for raw in text.splitlines():
        stack, _, count_text = raw.strip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # Split on ';' from the right: a process frame's command line may itself contain ';', a code frame cannot.
        for frame in reversed(stack.split(";")):
            key = parse_frame(frame)
            if key is not None:
                counts[key] = counts.get(key, 0) + count
                break
    return counts


def total_of(text: str) -> int:
    """All samples in py-spy raw output, leaf or not (the denominator of the shares)."""
    total = 0
    for raw in text.splitlines():
        count_text = raw.strip().rpartition(" ")[2]
        if count_text.isdigit():
            total += int(count_text)
    return total


def top_functions(
    counts: dict[tuple[str, str], int], n: int = 10, total: int | None = None
) -> tuple[FunctionTime, ...]:
    """The n functions with the most own samples; share is relative to `total` (default: the sum of counts)."""
    denominator = sum(counts.values()) if total is None else total
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # ties: by name, so output is stable
    return tuple(
        FunctionTime(function=fn, location=loc, own_samples=c, share=c / denominator if denominator else 0.0)
        for (fn, loc), c in ranked[:n]
        if c > 0
    )


def explain_failure(output: str, pid: int) -> str:
    """The gist of py-spy's console output for a pid that gave no samples, as one line."""
    lines = [ln.strip() for ln in output.splitlines()]
    if _PERMISSION.search(output):
        return NOT_PERMITTED_MESSAGE
    if "Check that the process is running" in output or "No such process" in output:
        return f"process {pid} was not running when py-spy started"
    if "Failed to find python version" in output:
        return f"process {pid} is not a Python process py-spy can read"
    # anyhow's layout: "Error: what failed", "Caused by:", "    0: why", then maybe a backtrace.
    error = next((ln[len("Error:") :].strip() for ln in lines if ln.startswith("Error:")), "")
    cause = ""
    if "Caused by:" in lines:
        after = lines[lines.index("Caused by:") + 1 :]
        cause = next((re.sub(r"^\d+:\s*", "", ln) for ln in after if ln), "")
    gist = f"{error} ({cause})" if error and cause else error
    if not gist:
        ours = [ln for ln in lines if ln and not ln.startswith("py-spy>") and not ln.startswith("Stack backtrace")]
        gist = ours[0] if ours else ""
    if not gist:
        return f"py-spy recorded no samples from process {pid} (it was idle, or stopped before py-spy attached)"
    gist = f"py-spy failed on process {pid}: {gist}"
    return gist if len(gist) <= MAX_MESSAGE_CHARS else gist[: MAX_MESSAGE_CHARS - 1] + "…"


@dataclass
class _Run:
    """One py-spy subprocess and its files."""

    pid: int
    output: Path  # the raw collapsed stacks
    log: Path  # py-spy's stdout and stderr
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    error: str = ""  # why it could not even start


class SpyRecorder:
    """Start py-spy on some pids, stop it later, get the top functions.

    Neither start() nor stop() raises: whatever goes wrong ends up as SpyReport.message.
    """

    def __init__(self, pids: list[int], out_dir: Path, rate_hz: int = 50, max_duration_s: int = 600) -> None:
        self.pids = tuple(dict.fromkeys(int(p) for p in pids))  # unique, in order
        self.out_dir = Path(out_dir)
        self.rate_hz = max(1, int(rate_hz))  # samples per second per process; 50 Hz costs the worker ~nothing
        self.max_duration_s = max(1, int(max_duration_s))  # py-spy stops on its own after this, if never stopped
        self._runs: list[_Run] = []
        self._error = ""  # a failure that concerns all pids (no binary, no folder)
        self._started = False
        self._report: SpyReport | None = None

    def command(self, exe: str, pid: int, output: Path) -> list[str]:
        """The py-spy command line for one pid."""
        return [
            exe, "record",
            "--pid", str(pid),
            "--format", "raw",
            "--output", str(output),
            "--rate", str(self.rate_hz),
            "--nonblocking",  # never pause the worker: it is being timed
            "--function",  # one entry per function (its first line), not one per line inside it
            "--duration", str(self.max_duration_s),
        ]  # fmt: skip

    def start(self) -> None:
        """Start one py-spy per pid. Failures are kept for stop()'s report."""
        if self._started:
            return
        self._started = True
        if not self.pids:
            self._error = "py-spy: no processes to record (no data-loader workers running?)"
            return
        exe = py_spy_path()
        if exe is None:
            self._error = NOT_FOUND_MESSAGE
            return
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._error = f"py-spy: cannot create {self.out_dir}: {e.strerror or e}"
            return
        # No Rust backtraces in the log: the gist is in the first lines.
        env = {**os.environ, "RUST_BACKTRACE": "0", "RUST_LIB_BACKTRACE": "0"}
        for pid in self.pids:
            run = _Run(pid=pid, output=self.out_dir / f"{pid}.txt", log=self.out_dir / f"{pid}.log")
            self._runs.append(run)
            try:
                run.output.unlink(missing_ok=True)  # a file left from an earlier run must not be read as this one
                run.log_file = run.log.open("wb")
                run.proc = subprocess.Popen(
                    self.command(exe, pid, run.output),
                    stdin=subprocess.DEVNULL,
                    stdout=run.log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # a Ctrl-C in the terminal is ours to pass on, not py-spy's to take
                )
            except (OSError, ValueError) as e:
                run.error = f"py-spy could not start: {e}"

    def stop(self, top_n: int = 10) -> SpyReport:
        """Stop every py-spy (SIGINT makes it write its file), then aggregate own time across all pids."""
        if self._report is not None:
            return self._report
        if not self._started:
            self._error = self._error or "py-spy was never started"
        if self._error:
            self._report = unavailable(self._error, self.pids)
            return self._report

        self._stop_all()
        counts: dict[tuple[str, str], int] = {}
        total = 0
        failures: list[str] = []
        recorded = 0
        for run in self._runs:
            text = _read(run.output)
            samples = total_of(text)
            if samples:
                recorded += 1
                total += samples
                for key, c in parse_collapsed(text).items():
                    counts[key] = counts.get(key, 0) + c
            else:
                failures.append(run.error or explain_failure(_read(run.log), run.pid))

        unique = list(dict.fromkeys(failures))
        if not recorded:
            message = unique[0] if len(unique) == 1 else "; ".join(unique)
            if len(message) > MAX_MESSAGE_CHARS:
                message = message[: MAX_MESSAGE_CHARS - 1] + "…"
            self._report = unavailable(message or "py-spy recorded no samples", self.pids)
            return self._report
        message = ""
        if failures:  # some workers recorded, some did not: still a result, but say what is missing
            message = f"py-spy recorded {recorded} of {len(self._runs)} processes; {unique[0]}"
        self._report = SpyReport(
            available=True,
            message=message[:MAX_MESSAGE_CHARS],
            pids=self.pids,
            total_samples=total,
            top=top_functions(counts, top_n, total=total),
        )
        return self._report

    def _stop_all(self) -> None:
        """SIGINT all running py-spy processes at once, then wait for them under one shared deadline."""
        for run in self._runs:
            if run.proc is not None and run.proc.poll() is None:
                with contextlib.suppress(OSError):
                    run.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for run in self._runs:
            if run.proc is not None:
                try:
                    run.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    run.proc.kill()
                    run.proc.wait()
                    run.error = run.error or f"py-spy on process {run.pid} did not stop within {STOP_TIMEOUT_S:.0f} s"
            if run.log_file is not None:
                run.log_file.close()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
