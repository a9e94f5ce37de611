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
from autotune.measure.staging import stage, window_cap
from autotune.measure.stats import median, settle_window
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
    images: int = 0  # images in the window, counted per batch
    window_s: float = 0.0
    queue_start: int | None = None  # batches ready when the window opened (timing.py)
    queue_end: int | None = None
    produced: int | None = None  # batches the workers finished in the window (consumed minus what the queue gave up)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_loader(config: TrainConfig, workload: Workload, options: ProbeOptions, scratch: Path) -> LoaderResult:
    """Iterate the exact training dataloader of `config` (built by Ultralytics' DetectionTrainer) and time it."""
    info = load_dataset(workload.data)
    counts = count_objects(info.train)
    # more batches than workers, or Ultralytics starts fewer workers than asked (no more than batches)
    need = max(options.warmup_max + window_cap(options, config.batch, config.workers) + 1, config.workers + 1)
    need *= config.batch
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
    from autotune.measure.passes import passes_over
    from autotune.measure.ultralytics_glue import ready_batches

    # The loop takes each batch as soon as it is ready, so the prefetch queue the workers filled at start-up
    # drains within its first prefetch x workers batches: the window waits for that (timing.py), or corrects.
    recorder = IterationRecorder(
        iters=options.iters,
        warmup_min=options.warmup_min,
        warmup_max=options.warmup_max,
        window=settle_window(config.workers),
        period=max(config.workers, 1),
        min_window_s=options.min_window_s,
        max_iters=window_cap(options, config.batch, config.workers),
        depth=lambda: ready_batches(loader),
    )
    try:
        recorder.mark()
        for batch in passes_over(loader):  # a small dataset's epoch may end before min_window_s: read it again
            recorder.batch_start()
            recorder.count_images(len(batch["img"]))
            recorder.batch_end()
            if recorder.done or recorder.n_seen > options.warmup_max + (recorder.max_iters or 0):
                break
    finally:
        if hasattr(loader, "close"):
            loader.close()
    waits, _ = recorder.window_times()
    if not waits or not recorder.done:
        return LoaderResult(config.workers, "crashed", "the loader's iterations never settled into a window")
    return loader_result(config, recorder, loader.num_workers)


def loader_result(config: TrainConfig, recorder: IterationRecorder, effective_workers: int) -> LoaderResult:
    """images/s of the window, stretched to the batches the loader produced where its queue was still draining."""
    waits, _ = recorder.window_times()
    choice = recorder.chosen
    images = sum(config.batch if k is None else k for k in recorder.window_images())
    seconds = sum(waits)
    produced = max(choice.produced, 1) if choice and choice.produced is not None else None
    # the loop takes no time of its own: the loader's pace is all there is
    sustained = seconds * len(waits) / produced if produced else seconds
    return LoaderResult(
        workers=config.workers,
        status="ok",
        effective_workers=effective_workers,
        images_per_s=images / sustained if sustained > 0 else float("inf"),
        sec_per_batch_median=median(waits),
        batches=len(waits),
        warmup=recorder.warmup or 0,
        images=images,
        window_s=seconds,
        queue_start=choice.queue_start if choice else None,
        queue_end=choice.queue_end if choice else None,
        produced=produced,
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
