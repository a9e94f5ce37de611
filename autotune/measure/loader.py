"""Loader-only throughput: Ultralytics' own training dataloader, iterated with no model at all.

It is the CPU side's ceiling: how many images per second decoding, mosaic and the other augmentations can feed
with this many workers and this cache mode. Runs in its own subprocess, on a staged subset (never the user's
folders), through isolate.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autotune.measure.dataset import choose_subset, count_objects, load_dataset
from autotune.measure.staging import stage
from autotune.measure.stats import mean, median, settle_window
from autotune.measure.timing import IterationRecorder
from autotune.records.config import ProbeOptions, TrainConfig, Workload


@dataclass(frozen=True)
class LoaderResult:
    workers: int  # requested
    status: str  # ok | crashed | timeout | oom | infeasible
    reason: str = ""
    effective_workers: int | None = None
    images_per_s: float | None = None  # batch / mean seconds per batch, after warm-up
    sec_per_batch_median: float | None = None
    batches: int = 0
    warmup: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_loader(config: TrainConfig, workload: Workload, options: ProbeOptions, scratch: Path) -> LoaderResult:
    """Iterate the exact training dataloader of `config` (built by Ultralytics' DetectionTrainer) and time it."""
    info = load_dataset(workload.data)
    counts = count_objects(info.train)
    # more batches than workers, or Ultralytics starts fewer workers than asked (no more than batches)
    need = max(options.warmup_max + options.iters + 1, config.workers + 1) * config.batch
    train_idx = choose_subset(counts, min(need, len(info.train)), options.seed)
    staged = stage(info, train_idx, choose_subset(count_objects(info.val), 1, options.seed), scratch / "data", counts)

    from ultralytics.models.yolo.detect import DetectionTrainer

    from autotune.measure.ultralytics_glue import patch_downloads

    patch_downloads()

    overrides = {
        "data": staged.data_yaml,
        "model": workload.model,
        "batch": config.batch,
        "imgsz": config.imgsz,
        "workers": config.workers,
        "cache": False if config.cache == "none" else config.cache,
        "device": config.device,
        "close_mosaic": 0,
        "plots": False,
        "project": str(scratch / "runs"),
        "name": "loader",
        "exist_ok": True,
        "verbose": False,
        "seed": options.seed,
    }
    trainer = DetectionTrainer(overrides=overrides)
    trainer.args.workers = config.workers  # Ultralytics zeroes it on CPU; the question is what workers can feed
    trainer.setup_model()  # the dataset needs the model's stride; the model itself never sees a batch
    loader = trainer.get_dataloader(trainer.data["train"], batch_size=config.batch, rank=-1, mode="train")
    recorder = IterationRecorder(
        iters=options.iters,
        warmup_min=options.warmup_min,
        warmup_max=options.warmup_max,
        window=settle_window(config.workers),
    )
    try:
        recorder.mark()
        for _ in loader:
            recorder.batch_start()
            recorder.batch_end()
            if recorder.done:
                break
    finally:
        if hasattr(loader, "close"):
            loader.close()
    waits, _ = recorder.window_times()
    if not waits:
        return LoaderResult(config.workers, "crashed", "the loader ran out of batches before the window was full")
    return LoaderResult(
        workers=config.workers,
        status="ok",
        effective_workers=loader.num_workers,
        images_per_s=config.batch / mean(waits) if mean(waits) > 0 else float("inf"),
        sec_per_batch_median=median(waits),
        batches=len(waits),
        warmup=recorder.warmup or 0,
    )


def run_in_subprocess(request: dict[str, Any], heartbeat: Any) -> dict[str, Any]:
    from autotune.measure.probe import parse_request

    heartbeat({"phase": "loader", "eta_s": 60})
    return measure_loader(*parse_request(request)).to_dict()


def loader_only(config: TrainConfig, workload: Workload, options: ProbeOptions) -> LoaderResult:
    """Loader-only throughput of `config`, measured in its own subprocess. Never raises for what happens there."""
    from autotune.measure import isolate
    from autotune.measure.probe import predicted_setup_s, request_for, scratch_root

    n_images = len(load_dataset(workload.data).train)
    policy = isolate.TimeoutPolicy(startup_s=predicted_setup_s(config, options, n_images), hard_s=options.timeout_s)
    with isolate.scratch_dir(scratch_root(options), "loader-") as work:
        request = request_for(config, workload, options, work)
        out = isolate.run_isolated("autotune.measure.loader:run_in_subprocess", request, work, policy)
    if out.status != "ok" or out.result is None:
        return LoaderResult(config.workers, out.status, out.reason)
    r = out.result
    result = LoaderResult(**r)
    if result.effective_workers is not None and result.effective_workers != config.workers:
        return LoaderResult(
            **{
                **r,
                "status": "infeasible",
                "reason": f"Ultralytics capped workers {config.workers} -> {result.effective_workers}",
            }
        )
    return result


def worker_counts(cpu_count: int) -> list[int]:
    """0, 1, 2, 4, 8, ... up to the CPU count (Ultralytics' own cap), with the CPU count itself last."""
    counts, w = [0, 1], 2
    while w < cpu_count:
        counts.append(w)
        w *= 2
    if cpu_count > 1:
        counts.append(cpu_count)
    return sorted(set(counts))
