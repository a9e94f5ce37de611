"""Reading the machine: its fingerprint, usable cores, live memory and utilisation of a process tree, and the loader
workers Ultralytics will start on it."""

from __future__ import annotations

import math
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from autotune.errors import UserError
from autotune.records.machine import GPU, Machine


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


def sampler_wait(sample_s: float, floor_s: float, share: float) -> float:
    """Seconds to wait after a sample that took `sample_s` so sampling takes at most `share` of the time.

    Reading smaps_rollup walks each process's page tables under its memory lock: measured on a 2-core VM, one
    sample of a probe with 3 loader workers took ~100 ms, and sampling every 0.25 s slowed training by ~12%.
    """
    return max(floor_s, sample_s / share - sample_s)


class PeakMemorySampler:
    """Samples the PSS of a process tree in a thread; keeps the peak and the most child processes seen.

    The sampler spends at most `share` of its time sampling (see sampler_wait); callers add samples at the
    moments that matter (e.g. when the measured window closes, with every loader worker alive).
    """

    def __init__(
        self,
        pid: int | None = None,
        interval_s: float = 0.25,
        share: float = 0.02,
        read: Callable[[int], tuple[int, int, str]] = tree_memory,
    ) -> None:
        self.pid = pid or os.getpid()
        self.interval_s = interval_s  # the shortest wait between samples
        self.share = share
        self.read = read
        self.peak_bytes = 0
        self.max_children = 0
        self.kind = "pss"
        self.samples = 0
        self.sampling_s = 0.0  # wall time spent in samples: the sampler's own cost
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

    def sample(self) -> float:
        """Take one sample now; returns the seconds it took."""
        t0 = time.perf_counter()
        b, n, kind = self.read(self.pid)
        took = time.perf_counter() - t0
        with self._lock:
            self.peak_bytes = max(self.peak_bytes, b)
            self.max_children = max(self.max_children, n)
            self.kind = kind
            self.samples += 1
            self.sampling_s += took
        return took

    def reset_peak(self) -> None:
        with self._lock:
            self.peak_bytes = 0

    def _run(self) -> None:
        wait = self.interval_s
        while not self._stop.wait(wait):
            wait = sampler_wait(self.sample(), self.interval_s, self.share)


def available_ram_bytes() -> int:
    return psutil.virtual_memory().available


def default_device() -> str:
    """'0' where CUDA works, else 'cpu'."""
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def device_memory(device: str) -> int:
    """Bytes a memory limit is a share of: the GPU's memory on CUDA, the RAM on a CPU."""
    if device == "cpu":
        return psutil.virtual_memory().total
    import torch

    return int(torch.cuda.get_device_properties(int(device)).total_memory)


def check_device(device: str) -> str:
    """'cpu', or a CUDA index that exists here; a UserError otherwise (before any probe starts)."""
    if device == "cpu":
        return device
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not device.isdigit() or int(device) >= n:
        have = f"CUDA devices 0-{n - 1}" if n else "no CUDA device"
        raise UserError(
            f"--device {device}: this machine has {have}; use --device cpu" + (" or one of those" if n else "")
        )
    return device


def loader_workers(workers: int, batch: int, n_images: int, cpus: int, gpus: int) -> int:
    """The loader workers Ultralytics' build_dataloader starts for `workers` asked: at most the CPU count per
    visible GPU, and no more than the epoch's batches (a one-batch loader runs in-process, with none)."""
    batches = math.ceil(n_images / batch) if batch > 0 else 0
    return min(cpus // max(gpus, 1), workers, 0 if batches <= 1 else batches)


def default_workers() -> int:
    """Ultralytics' default of 8 loader workers, capped as Ultralytics caps it (os.cpu_count per GPU)."""
    return min(8, os.cpu_count() or 1)


@dataclass(frozen=True)
class Utilisation:
    """What the machine was doing while a probe measured: CPU per core, RSS of the process tree, GPU."""

    interval_s: float
    samples: int
    seconds: float
    cpu_per_core_mean: tuple[float, ...]  # percent, per logical core
    cpu_total_mean: float  # percent of all cores
    rss_peak_bytes: int  # main process + workers (RSS: cheap enough at 10 Hz; PSS is sampled apart)
    gpu_util_mean: float | None  # percent; None without a GPU
    gpu_mem_peak_bytes: int | None
    sampler_cpu_s: float  # the sampler's own CPU time
    tree_cpu_s: float  # CPU time of the probe's process tree over the same span
    series: dict[str, list[float]]  # t, cpu_total, rss, gpu_util: for charts

    @property
    def overhead(self) -> float:
        """The sampler's CPU time as a share of the probe's: kept under 3%."""
        return self.sampler_cpu_s / self.tree_cpu_s if self.tree_cpu_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "overhead": self.overhead}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Utilisation:
        d = {k: v for k, v in d.items() if k != "overhead"}
        return cls(**{**d, "cpu_per_core_mean": tuple(d["cpu_per_core_mean"])})


def _tree_cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


class UtilisationSampler:
    """About 10 samples a second of CPU per core, tree RSS and (with NVML) GPU utilisation and memory."""

    def __init__(self, gpu_index: int | None = None, interval_s: float = 0.1, pid: int | None = None) -> None:
        self.interval_s = interval_s
        self.root = psutil.Process(pid or os.getpid())
        self.gpu_index = gpu_index
        self.t: list[float] = []
        self.cpu: list[list[float]] = []
        self.rss: list[float] = []
        self.gpu: list[float] = []
        self.gpu_mem: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autotune-util", daemon=True)
        self._own_cpu = 0.0
        self._nvml: Any = None
        self._handle: Any = None

    def start(self) -> None:
        if self.gpu_index is not None:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(self.gpu_index)
            except Exception:  # no NVML: GPU columns stay "n/a", the rest is sampled
                self._nvml = None
        self._procs_at_start = [self.root, *self.root.children(recursive=True)]
        self._cpu0 = _tree_cpu_s(self._procs_at_start)
        self._t0 = time.monotonic()
        psutil.cpu_percent(percpu=True)  # primes the counters: the next call reports since now
        self._thread.start()

    def _run(self) -> None:
        c0 = time.thread_time()
        procs: list[psutil.Process] = []
        k = 0
        while not self._stop.wait(self.interval_s):
            if k % 10 == 0:  # listing children scans all of /proc: once a second is enough for loader workers
                procs = [self.root, *self.root.children(recursive=True)]
            k += 1
            self.t.append(time.monotonic() - self._t0)
            self.cpu.append(psutil.cpu_percent(percpu=True))
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    continue
            self.rss.append(float(rss))
            if self._nvml is not None:
                self.gpu.append(float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))
                self.gpu_mem.append(float(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used))
        self._own_cpu = time.thread_time() - c0

    def stop(self) -> Utilisation:
        self._stop.set()
        self._thread.join(timeout=5)
        seconds = time.monotonic() - self._t0
        procs = {p.pid: p for p in [*self._procs_at_start, self.root, *self.root.children(recursive=True)]}
        tree_cpu = _tree_cpu_s(list(procs.values())) - self._cpu0
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
        n = len(self.cpu)
        per_core = tuple(sum(c[i] for c in self.cpu) / n for i in range(len(self.cpu[0]))) if n else ()
        return Utilisation(
            interval_s=self.interval_s,
            samples=n,
            seconds=seconds,
            cpu_per_core_mean=per_core,
            cpu_total_mean=sum(per_core) / len(per_core) if per_core else 0.0,
            rss_peak_bytes=int(max(self.rss, default=0)),
            gpu_util_mean=sum(self.gpu) / len(self.gpu) if self.gpu else None,
            gpu_mem_peak_bytes=int(max(self.gpu_mem)) if self.gpu_mem else None,
            sampler_cpu_s=self._own_cpu,
            tree_cpu_s=max(tree_cpu, 0.0),
            series={
                "t": self.t,
                "cpu_total": [sum(c) / len(c) for c in self.cpu],
                "rss": self.rss,
                "gpu_util": self.gpu,
            },
        )
