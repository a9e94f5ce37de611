"""What machine a measurement was made on, and live memory readings of a process tree."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil


@dataclass(frozen=True)
class GPU:
    name: str
    memory_bytes: int


@dataclass(frozen=True)
class Machine:
    """Identity fields decide whether two timings are comparable; versions are recorded but not identity."""

    cpu_model: str
    usable_cores: int  # sched_getaffinity: what this process may run on, not what the box has
    ram_bytes: int
    gpus: tuple[GPU, ...]
    hostname: str
    versions: dict[str, str] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        return {
            "cpu_model": self.cpu_model,
            "usable_cores": self.usable_cores,
            "ram_gib": round(self.ram_bytes / 2**30),  # rounded: the kernel reserves a varying slice
            "gpus": [(g.name, round(g.memory_bytes / 2**30)) for g in self.gpus],
        }

    def identity_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def summary(self) -> str:
        gpu = ", ".join(f"{g.name} {g.memory_bytes / 2**30:.0f} GiB" for g in self.gpus) or "no GPU"
        return f"{self.cpu_model}, {self.usable_cores} cores, {self.ram_bytes / 2**30:.0f} GiB RAM, {gpu}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gpus"] = [asdict(g) for g in self.gpus]  # lists, as JSON gives them back
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Machine:
        return cls(
            cpu_model=d["cpu_model"],
            usable_cores=d["usable_cores"],
            ram_bytes=d["ram_bytes"],
            gpus=tuple(GPU(**g) for g in d.get("gpus", ())),
            hostname=d.get("hostname", ""),
            versions=dict(d.get("versions", {})),
        )


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvml_gpus() -> tuple[GPU, ...]:
    """GPUs seen by NVML; empty where there is no NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver or no library: a CPU-only machine, not an error
        return ()
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else name
            out.append(GPU(name=name, memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(h).total)))
        return tuple(out)
    finally:
        pynvml.nvmlShutdown()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def fingerprint() -> Machine:
    from autotune import __version__

    return Machine(
        cpu_model=_cpu_model(),
        usable_cores=usable_cores(),
        ram_bytes=psutil.virtual_memory().total,
        gpus=nvml_gpus(),
        hostname=platform.node(),
        versions={
            "python": platform.python_version(),
            "torch": _version("torch"),
            "ultralytics": _version("ultralytics"),
            "optuna": _version("optuna"),
            "autotune": __version__,
        },
    )


def pss_bytes(pid: int) -> int | None:
    """Proportional set size of one process: shared pages (a RAM cache forked into workers) counted once overall."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_memory(pid: int) -> tuple[int, int, str]:
    """(bytes, number of child processes, 'pss' or 'rss') for a process and all its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0, "pss"
    total, kind = 0, "pss"
    for p in procs:
        b = pss_bytes(p.pid)
        if b is None:  # no smaps_rollup (not Linux, or process gone): fall back to RSS, and say so
            try:
                b = p.memory_info().rss
                kind = "rss"
            except psutil.Error:
                b = 0
        total += b
    return total, len(procs) - 1, kind


class PeakMemorySampler:
    """Samples the PSS of a process tree in a thread; keeps the peak and the most child processes seen."""

    def __init__(self, pid: int | None = None, interval_s: float = 0.25) -> None:
        self.pid = pid or os.getpid()
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.max_children = 0
        self.kind = "pss"
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autotune-mem", daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> PeakMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def sample(self) -> int:
        b, n, kind = tree_memory(self.pid)
        with self._lock:
            self.peak_bytes = max(self.peak_bytes, b)
            self.max_children = max(self.max_children, n)
            self.kind = kind
            self.samples += 1
        return b

    def reset_peak(self) -> None:
        with self._lock:
            self.peak_bytes = 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()


def available_ram_bytes() -> int:
    return psutil.virtual_memory().available


def wait_for_exit(pids: list[int], timeout_s: float) -> list[int]:
    """Pids still alive after waiting up to timeout_s."""
    deadline = time.monotonic() + timeout_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if alive:
            time.sleep(0.05)
    return alive


def default_device() -> str:
    """'0' where CUDA works, else 'cpu'."""
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def default_workers() -> int:
    """Ultralytics' default of 8 loader workers, capped as Ultralytics caps it (os.cpu_count per GPU)."""
    return min(8, os.cpu_count() or 1)
