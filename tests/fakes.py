"""Shared test fakes: a clock tests move by hand, a probe with a known throughput model, an Ultralytics trainer."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from autotune.measure.stats import summarize
from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.probe import MemoryUse, ProbeResult, failed

GIB = 2**30


class FakeClock:
    """Seconds that pass only when a test says so; counts device syncs."""

    def __init__(self) -> None:
        self.t = 0.0
        self.syncs = 0

    def __call__(self) -> float:
        return self.t

    def sync(self) -> None:
        self.syncs += 1


class FakeProbe:
    """Throughput grows with batch and workers and falls with imgsz^2; memory grows with batch x imgsz^2."""

    def __init__(
        self,
        clock: FakeClock,
        seconds: float = 30.0,
        oom_above: float = 1e18,
        val_batch_s: Callable[[TrainConfig], float] | None = None,
    ) -> None:
        self.clock, self.seconds, self.oom_above = clock, seconds, oom_above
        self.val_batch_s = val_batch_s  # seconds of one validation batch (2x batch); None: not measured
        self.calls: list[TrainConfig] = []

    def memory(self, c: TrainConfig) -> int:
        return int(0.5 * GIB + c.batch * c.imgsz**2 * 200)

    def __call__(self, c: TrainConfig, w: Workload, o: ProbeOptions, on_progress=None) -> ProbeResult:
        self.calls.append(c)
        self.clock.t += self.seconds
        mem = self.memory(c)
        if mem > self.oom_above:
            return failed("oom", "CUDA out of memory", c, w)
        ips = 40.0 * (c.batch / (c.batch + 8)) * (1 + 0.3 * c.workers) * (128 / c.imgsz) ** 2
        ips *= {"none": 1.0, "disk": 1.1, "ram": 1.2}[c.cache]
        per_iter = c.batch / ips
        if on_progress:
            for k in range(1, 6):
                if on_progress({"phase": "measure", "iter": k, "measured": k, "window_s": per_iter, "eta_s": 1}):
                    return failed("pruned", "stopped early", c, w)
        stats = summarize([0.0] * 10, [per_iter] * 10, [0.0], c.batch, c.accumulate)
        return ProbeResult(
            status="ok",
            reason="",
            requested=c.to_dict(),
            effective={},
            stats=stats,
            memory=MemoryUse(
                peak_host_bytes=mem,
                host_kind="pss",
                host_limit_bytes=None,
                loader_processes=c.workers,
                child_processes=c.workers,
                val_batch=2 * c.batch if self.val_batch_s else None,
                val_batch_s=self.val_batch_s(c) if self.val_batch_s else None,
            ),
            cache=None,
            files=None,
            workload={**w.to_dict(), "n_train": 800},
            subset={},
            timings={"data_wait_s": [0.0] * 10, "compute_s": [per_iter] * 10},
            duration_s=self.seconds,
        )


class _Dataset:
    def __init__(self, n):
        self.n, self.cache, self.transforms = n, "ram", None
        self.npy_files: list[Path] = []

    def __len__(self):
        return self.n


class FakeLoader:
    def __init__(self, n, batch, workers=2):
        self.dataset, self.n, self.batch, self.num_workers = _Dataset(n), n, batch, workers

    def __len__(self):
        return math.ceil(self.n / self.batch)


class AdamW:
    pass


def fake_trainer(save_dir, epochs=3, start_epoch=0, batch=16, clock=None, val_s=0.8):
    t = SimpleNamespace(
        args=SimpleNamespace(workers=0, imgsz=96, nbs=64, warmup_epochs=1.0, close_mosaic=1, val=True),
        save_dir=Path(save_dir),
        train_loader=FakeLoader(160, batch),
        test_loader=FakeLoader(40, 2 * batch),
        batch_size=batch,
        epochs=epochs,
        start_epoch=start_epoch,
        amp=False,
        accumulate=4,
        optimizer=AdamW(),
        metrics={},
        epoch=start_epoch,
        device="cpu",
        steps=0,
    )

    def optimizer_step():
        t.steps += 1

    t.optimizer_step = optimizer_step
    t.preprocess_batch = lambda batch: batch

    def validate():
        clock.t += val_s
        t.metrics = {"metrics/mAP50(B)": 0.5, "metrics/mAP50-95(B)": 0.25, "val/box_loss": 1.0}
        return t.metrics, 0.3

    t.validate = validate
    return t
