"""The probe's measurement, inside its subprocess: stage a subset, train with Ultralytics, time every iteration.

It trains with the requested settings through Ultralytics' own trainer, times every iteration from its
callbacks, stops by raising once the window is full, then measures one validation batch by hand.
probe.probe() runs it through isolate.py; nothing here is meant to run in the caller's process.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune import pagecache
from autotune.config import ProbeOptions, TrainConfig, Workload, optimizer_args, parse_memory_limit
from autotune.dataset import StagedSubset, choose_subset, count_objects, image_sizes, load_dataset, stage, stale_npy
from autotune.machine import PeakMemorySampler, UtilisationSampler, available_ram_bytes, loader_workers
from autotune.probe import (
    CacheCost,
    FileState,
    Heartbeat,
    MemoryUse,
    ProbeResult,
    failed,
    now_iso,
    parse_request,
)
from autotune.space import cache_fits
from autotune.stats import settle_window, summarize
from autotune.timing import MEASURE, WARMUP, IterationRecorder

STEP_SAMPLES = 3  # steady optimizer steps timed in the warm-up (MuSGD's step is seconds on a CPU: keep it few)


class _WindowFull(Exception):
    """Raised from a callback to stop Ultralytics once the measured window is complete."""


@dataclass
class _CacheTimer:
    """Times Ultralytics' BaseDataset.cache_images per dataset (train and val)."""

    records: list[tuple[str, int, float, int]] = field(default_factory=list)  # (prefix, images, seconds, bytes)

    def install(self) -> Callable[[], None]:
        from ultralytics.data.base import BaseDataset

        original = BaseDataset.cache_images
        timer = self

        def timed(ds: Any) -> None:
            t0 = time.perf_counter()
            original(ds)
            dt = time.perf_counter() - t0
            if ds.cache == "disk":
                nbytes = sum(f.stat().st_size for f in ds.npy_files if f.exists())
            else:  # ram: resized images, height x width x channels bytes (uint8)
                nbytes = sum(h * w * ds.channels for h, w in (hw for hw in ds.im_hw if hw))
            timer.records.append((str(ds.prefix), ds.ni, dt, nbytes))

        BaseDataset.cache_images = timed

        def undo() -> None:
            BaseDataset.cache_images = original

        return undo


def offline_amp_check(model: Any) -> bool:
    """Stand-in for Ultralytics' check_amp, which downloads weights to compare FP32 and AMP detections.

    Runs a convolution in FP32 and under autocast on the model's device and checks the results are finite and
    close; broken AMP (NaNs or garbage on some GPUs) fails it. CPU and MPS never use AMP in Ultralytics.
    """
    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    try:
        conv = torch.nn.Conv2d(3, 16, 3).to(device)
        x = torch.randn(2, 3, 64, 64, device=device)
        with torch.no_grad():
            ref = conv(x)
            with torch.autocast("cuda"):
                amp = conv(x)
        return bool(torch.isfinite(amp).all() and torch.allclose(amp.float(), ref, atol=0.05, rtol=0.05))
    except RuntimeError:
        return False


def _subset_sizes(
    config: TrainConfig, options: ProbeOptions, n_train: int, n_val: int, workers: int
) -> tuple[int, int]:
    """Images to stage for train and val.

    The window never revisits an image: neither the page cache nor the mosaic buffer may serve a repeat.
    Worst case it needs warmup_max + iters batches, plus one spare for the batch in flight. And more batches
    than loader workers: Ultralytics starts no more workers than batches, and the full run has its `workers`.
    """
    need_train = max(options.warmup_max + options.iters + 1, workers + 1) * config.batch
    val_batch = 2 * config.batch
    need_val = 2 * val_batch  # one untimed batch, one timed
    return min(need_train, n_train), min(need_val, n_val)


def _page_cache_regime(files_bytes: int, cache: str, npy_bytes: int) -> tuple[str, str]:
    """Will the full run read its files warm (from RAM) or cold (from disk) once it is in steady state?"""
    avail = available_ram_bytes()
    if cache == "ram":
        return "n/a", "cache=ram decodes every image once and keeps it in memory"
    read_bytes, what = (npy_bytes, ".npy cache") if cache == "disk" else (files_bytes, "image files")
    # half of what is available: the page cache competes with the process, its workers and other users
    if read_bytes < 0.5 * avail:
        return "warm", f"the {what} ({read_bytes / 2**30:.2f} GiB) fit in available RAM ({avail / 2**30:.1f} GiB)"
    return "cold", f"the {what} ({read_bytes / 2**30:.2f} GiB) exceed half the available RAM ({avail / 2**30:.1f} GiB)"


def measure(
    config: TrainConfig,
    workload: Workload,
    options: ProbeOptions,
    scratch: Path,
    heartbeat: Heartbeat = lambda _: None,
) -> ProbeResult:
    """Run one probe in this process. Meant for a subprocess: it patches Ultralytics and trains."""
    t_start = time.perf_counter()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    heartbeat({"phase": "staging"})
    info = load_dataset(workload.data)
    counts = count_objects(info.train)
    import torch

    cuda = config.device != "cpu"
    # the loader workers Ultralytics starts in the full run (it caps what was asked); the probe must match
    workers = loader_workers(
        config.workers, config.batch, len(info.train), os.cpu_count() or 1, torch.cuda.device_count() if cuda else 0
    )
    n_train_sub, n_val_sub = _subset_sizes(config, options, len(info.train), len(info.val), workers)
    train_idx = choose_subset(counts, n_train_sub, options.seed)
    val_idx = choose_subset(count_objects(info.val), n_val_sub, options.seed)
    staged = stage(info, train_idx, val_idx, scratch / "data", counts)
    source_cost = None
    if config.source == "resized":
        heartbeat({"phase": "resizing the staged subset"})
        source_cost = resize_staged(staged, config.imgsz, len(info.train) + len(info.val), Path(workload.data).parent)
    warnings: list[str] = []
    if workers != config.workers:
        warnings.append(
            f"Ultralytics starts {workers} loader workers, not {config.workers}: at most the CPU count per GPU and no "
            f"more than the {-(-len(info.train) // config.batch)} batches of an epoch; your full run gets the same"
        )
    stale = stale_npy(info.train) + stale_npy(info.val)
    if stale:
        warnings.append(
            f"{len(stale)} .npy files beside your images (e.g. {stale[0]}): Ultralytics reads them in every cache "
            "mode, so your real runs use them; probes do not see them"
        )

    sources = list(staged.train_sources) + list(staged.val_sources)
    resident_before = pagecache.resident_fraction(sources)
    files_bytes = sum(os.path.getsize(p) for p in info.train)
    if cuda and not torch.cuda.is_available():
        return failed("infeasible", f"device {config.device} requested but CUDA is not available", config, workload)
    sizes = image_sizes(staged.train_sources[:16])
    mean_pixels = sum(w * h for w, h in sizes) / len(sizes) if sizes else 0.0
    npy_full_bytes = int(mean_pixels * 3 * len(info.train))  # .npy files hold full-resolution uint8 BGR
    regime, regime_reason = _page_cache_regime(files_bytes, config.cache, npy_full_bytes)
    mode = options.page_cache if options.page_cache != "auto" else regime
    action = "none"
    if mode == "warm":
        pagecache.warm(sources)
        action = "warmed"
    elif mode == "cold":
        pagecache.drop(sources)
        action = "dropped"

    # The optimizer is pinned to the full run's choice (see config.auto_optimizer).
    opt_args, optimizer_reason = optimizer_args(config, len(info.train), info.nc, workload.epochs)

    gpu_limit = host_limit = None
    if cuda:
        dev = torch.device(f"cuda:{config.device}")
        total = torch.cuda.get_device_properties(dev).total_memory
        if options.memory_limit:
            gpu_limit = parse_memory_limit(options.memory_limit, total)
            # enforced, not only observed: the allocator raises OOM past this fraction
            torch.cuda.set_per_process_memory_fraction(min(gpu_limit / total, 1.0), dev)
        torch.cuda.reset_peak_memory_stats(dev)
    elif options.memory_limit:
        import psutil

        host_limit = parse_memory_limit(options.memory_limit, psutil.virtual_memory().total)

    recorder = IterationRecorder(
        iters=options.iters,
        warmup_min=options.warmup_min,
        warmup_max=options.warmup_max,
        window=settle_window(workers),
        sync=(lambda: torch.cuda.synchronize()) if cuda else (lambda: None),
    )
    eff: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    state: dict[str, Any] = {"trainer": None, "loader_procs": 0, "npy_dropped": False}
    cache_timer = _CacheTimer()
    undo_cache_timer = cache_timer.install()

    import ultralytics.engine.trainer as ul_trainer
    from ultralytics import YOLO

    ul_trainer.check_amp = offline_amp_check  # never download weights for the AMP check

    def on_pretrain_routine_start(trainer: Any) -> None:
        # Ultralytics forces workers=0 on CPU; the user asked for a number, and the real run can have it too
        # through autotune train. Restored here, before any dataloader exists.
        trainer.args.workers = config.workers
        state["trainer"] = trainer
        heartbeat({"phase": "building"})

    def on_pretrain_routine_end(trainer: Any) -> None:
        ds = trainer.train_loader.dataset
        eff.update(
            batch=int(trainer.batch_size),
            workers=int(trainer.train_loader.num_workers),
            imgsz=int(trainer.args.imgsz),
            cache=ds.cache or "none",
            amp=bool(trainer.amp),
            accumulate=int(trainer.accumulate),
            optimizer=type(trainer.optimizer).__name__,
            device=str(trainer.device),
            # .npy files next to the staged images when training starts: with cache=disk the subset's own,
            # otherwise none, so every image is decoded from its file as the user's run would
            npy_files=sum(1 for f in ds.npy_files if f.exists()),
        )
        state["damaged"] = _damaged_images(staged, ds.im_files, trainer.test_loader.dataset.im_files)
        original_step = trainer.optimizer_step

        def timed_step() -> None:
            recorder.step_start()
            original_step()
            recorder.step_end()

        trainer.optimizer_step = timed_step
        state["original_step"] = original_step
        original_preprocess = trainer.preprocess_batch

        def keep_batch(batch: dict[str, Any]) -> dict[str, Any]:
            state["last_batch"] = out = original_preprocess(batch)
            return out

        if options.compute_only_iters:
            trainer.preprocess_batch = keep_batch
        if config.cache == "disk" and mode == "cold":  # the fresh .npy files sit in the page cache: evict them
            pagecache.drop(str(f) for f in ds.npy_files)
            state["npy_dropped"] = True

    def start_profilers(trainer: Any) -> None:
        if options.utilisation:
            state["util"] = UtilisationSampler(gpu_index=int(config.device) if cuda else None)
            state["util"].start()
        if options.py_spy:
            from autotune.pyspy import SpyRecorder

            # the loader workers, or the main process where it loads the data itself (workers=0)
            pids = _loader_worker_pids(trainer.train_loader) or [os.getpid()]
            state["spy"] = SpyRecorder(pids, scratch / "py-spy")
            state["spy"].start()

    def stop_profilers() -> None:
        if "util" in state:
            extras["utilisation"] = state.pop("util").stop().to_dict()
        if "spy" in state:
            extras["py_spy"] = state.pop("spy").stop().to_dict()

    def want_forced_steps() -> bool:
        return recorder.phase == WARMUP and len(recorder.step_s) < recorder.step_discard + STEP_SAMPLES

    def on_train_epoch_start(trainer: Any) -> None:
        # Ultralytics halves the batch and retries after an OOM in the first epoch; an OOM must stay an OOM.
        trainer._oom_retries = 3
        if want_forced_steps():
            # Step on every early warm-up iteration: the step's cost is then known from several samples
            # without a longer window; the window itself runs at the real accumulation period (restored below).
            trainer.accumulate = 1
        if recorder.n_seen == 0:
            recorder.mark()
            state["resident_at_start"] = pagecache.resident_fraction(sources)

    def on_train_batch_start(trainer: Any) -> None:
        recorder.batch_start()
        if "mosaic" not in eff:  # after the epoch start, where Ultralytics closes mosaic
            eff["mosaic"] = mosaic_on(trainer.train_loader.dataset)

    def on_train_batch_end(trainer: Any) -> None:
        before = recorder.phase
        recorder.batch_end()
        phase = recorder.phase
        if before == WARMUP and not want_forced_steps():
            trainer.accumulate = eff["accumulate"]
        if before == WARMUP and phase != WARMUP:
            start_profilers(trainer)
        if phase == MEASURE:
            state["loader_procs"] = max(state["loader_procs"], _live_loader_workers(trainer.train_loader))
        last = recorder.last_total()
        todo = (options.warmup_max if recorder.warmup is None else recorder.warmup) + options.iters - recorder.n_seen
        beat = {"phase": phase, "iter": recorder.n_seen, "iter_s": last, "eta_s": max(todo, 0) * last}
        if recorder.warmup is not None:  # the window so far: lets a search prune a clearly slower trial early
            waits, computes = recorder.window_times()
            if computes:
                steps = sum(
                    s for s, i in zip(recorder.step_s, recorder.step_iters, strict=True) if i >= recorder.warmup
                )
                beat.update(measured=len(computes), window_s=(sum(waits) + sum(computes) + steps) / len(computes))
        heartbeat(beat)
        if recorder.done:
            stop_profilers()
            raise _WindowFull

    model = YOLO(workload.model)
    for event, fn in (
        ("on_pretrain_routine_start", on_pretrain_routine_start),
        ("on_pretrain_routine_end", on_pretrain_routine_end),
        ("on_train_epoch_start", on_train_epoch_start),
        ("on_train_batch_start", on_train_batch_start),
        ("on_train_batch_end", on_train_batch_end),
    ):
        model.add_callback(event, fn)

    train_args: dict[str, Any] = {
        "data": staged.data_yaml,
        "epochs": workload.epochs,  # the planned run's: Ultralytics caps accumulate by iterations x epochs
        "batch": config.batch,
        "imgsz": config.imgsz,
        "workers": config.workers,
        "cache": False if config.cache == "none" else config.cache,
        "device": config.device,
        "amp": config.amp,
        "nbs": config.nbs,
        "warmup_epochs": 0,  # the warm-up epochs' accumulation ramp is a phase of its own, predicted apart
        # mosaic on, as in most epochs of the real run; or closed from the first epoch (epoch >= epochs - close_mosaic)
        # for the no-mosaic phase of a run's last close_mosaic epochs
        "close_mosaic": 0 if options.mosaic else workload.epochs,
        "val": False,
        "plots": False,  # plotting fetches a font
        "save": False,
        "project": str(scratch / "runs"),
        "name": "probe",
        "exist_ok": True,
        "verbose": False,
        "seed": options.seed,
        **opt_args,
    }
    status, reason = "ok", ""
    val: dict[str, Any] = {}
    with PeakMemorySampler() as sampler:
        try:
            model.train(**train_args)
            status, reason = "crashed", "training ended before the measured window was full"
        except _WindowFull:
            if options.compute_only_iters and "last_batch" in state:
                heartbeat({"phase": "compute-only"})
                try:
                    extras["compute_only"] = _compute_only(
                        state["trainer"], state.pop("last_batch"), options.compute_only_iters, cuda
                    )
                except Exception as e:  # an OOM here is reported, the window's measurement stands
                    extras["compute_only"] = {"error": _classify_exception(e)[1]}
        except Exception as e:  # classified, never swallowed: the status carries it to the caller
            status, reason = _classify_exception(e)
            traceback.print_exc()
        finally:
            undo_cache_timer()
        train_peak_host = sampler.peak_bytes
        trainer = state["trainer"]
        gpu_peak = (
            (int(torch.cuda.max_memory_reserved()), int(torch.cuda.max_memory_allocated())) if cuda else (None, None)
        )
        if status == "ok" and trainer is not None:
            heartbeat({"phase": "validate"})
            sampler.reset_peak()
            try:
                val = _measure_val_batch(trainer, cuda)
            except Exception as e:  # an OOM here is the point of the check: validation runs at 2x batch
                status, reason = _classify_exception(e)
                reason = f"validation batch (batch {2 * config.batch}): {reason}"
            val["val_peak_host_bytes"] = sampler.peak_bytes
        children = sampler.max_children
        host_kind = sampler.kind
        if trainer is not None:
            for loader in (getattr(trainer, "train_loader", None), getattr(trainer, "test_loader", None)):
                if loader is not None and hasattr(loader, "close"):
                    loader.close()

    if trainer is None or not eff:
        return _finish_failed(status, reason, config, workload, options, warnings, t_start)

    stats, revisits = None, False
    if status == "ok":
        wait, compute = recorder.window_times()
        steps = recorder.steady_steps() or recorder.step_s
        if not recorder.step_s:
            status, reason = "crashed", "no optimizer step was seen"
        else:
            stats = summarize(wait, compute, steps, eff["batch"], eff["accumulate"])
        used = (recorder.warmup or 0) + options.iters + 1
        revisits = used * eff["batch"] > len(staged.train)
        if revisits:
            warnings.append(
                f"the dataset has {len(info.train)} training images, fewer than the {used} batches of this probe "
                "need: later iterations revisit images, which the page cache and mosaic buffer serve"
            )
        if not recorder.settled:
            warnings.append(
                f"iteration times had not settled after {options.warmup_max} warm-up iterations; "
                "measured anyway, expect more noise"
            )

    skipped, restored = state.get("damaged", ([], []))
    if skipped:
        warnings.append(f"skipped {len(skipped)} corrupt image(s) Ultralytics cannot read: {', '.join(skipped)}")
    if restored:
        warnings.append(
            f"{len(restored)} truncated JPEG(s) that Ultralytics would rewrite in place when your run scans them "
            f"(the probe only rewrote its own copy): {', '.join(restored)}"
        )
    effective = {**eff, "loader_processes": state["loader_procs"]}
    changed = mismatches(config, effective, opt_args, cuda, workers)
    if effective.get("mosaic") is not None and effective["mosaic"] != options.mosaic:
        changed.append(
            (
                "infeasible",
                f"mosaic {'on' if options.mosaic else 'off'} asked, Ultralytics trained "
                f"with it {'on' if effective['mosaic'] else 'off'}",
            )
        )
    cache = _cache_cost(config, cache_timer, len(info.train) + len(info.val), info.train[0])
    if status == "ok" and changed:
        status, reason = changed[0]
    if status == "ok" and cache.fits is False:
        status, reason = "infeasible", cache.rule
    memory = MemoryUse(
        peak_host_bytes=train_peak_host,
        host_kind=host_kind,
        host_limit_bytes=host_limit,
        loader_processes=state["loader_procs"],
        child_processes=children,
        peak_gpu_reserved_bytes=gpu_peak[0],
        peak_gpu_allocated_bytes=gpu_peak[1],
        gpu_limit_bytes=gpu_limit,
        val_batch=val.get("val_batch"),
        val_batch_s=val.get("val_batch_s"),
        val_data_s=val.get("val_data_s"),
        val_first_s=val.get("val_first_s"),
        val_peak_gpu_bytes=val.get("val_peak_gpu_bytes"),
        val_peak_host_bytes=val.get("val_peak_host_bytes"),
    )
    if status == "ok":
        status, reason = _limit_status(memory)
    resident_start = state.get("resident_at_start")
    files = FileState(
        resident_before=resident_before,
        resident_at_start=resident_start,
        read=pagecache.describe(resident_start),
        regime=regime,
        regime_reason=regime_reason,
        action=action + (" (and the .npy cache dropped)" if state["npy_dropped"] else ""),
    )
    effective["optimizer_reason"] = optimizer_reason
    return ProbeResult(
        status=status,
        reason=reason,
        requested=config.to_dict(),
        effective=effective,
        stats=stats,
        memory=memory,
        cache=cache,
        files=files,
        source_cost=source_cost,
        workload={**workload.to_dict(), "n_train": len(info.train), "n_val": len(info.val), "nc": info.nc},
        subset=_subset_summary(staged, revisits),
        timings={
            "data_wait_s": recorder.data_wait_s,
            "compute_s": recorder.compute_s,
            "step_s": recorder.step_s,
            "step_iters": recorder.step_iters,
            "warmup": recorder.warmup,
            "settled": recorder.settled,
            "window": recorder.window,
        },
        warnings=tuple(warnings),
        options=options.to_dict(),
        extras=extras,
        created=now_iso(),
        duration_s=time.perf_counter() - t_start,
    )


def _finish_failed(
    status: str,
    reason: str,
    config: TrainConfig,
    workload: Workload,
    options: ProbeOptions,
    warnings: list[str],
    t_start: float,
) -> ProbeResult:
    if status == "ok":
        status, reason = "crashed", "Ultralytics stopped before training started"
    r = failed(status, reason, config, workload, warnings=tuple(warnings), options=options.to_dict())
    return ProbeResult(**{**r.__dict__, "duration_s": time.perf_counter() - t_start})


def resize_staged(staged: StagedSubset, imgsz: int, full_images: int, beside: Path) -> CacheCost:
    """Replace the staged links by copies pre-resized to imgsz, as `autotune resize` writes them; the time and
    bytes per image, extrapolated to the whole dataset, are the one-time cost of making that copy."""
    from autotune.resize import RESIZED, shrink_encoded

    t0, n, written = time.perf_counter(), 0, 0
    for link, src in zip(staged.train + staged.val, staged.train_sources + staged.val_sources, strict=True):
        outcome, data = shrink_encoded(Path(src).read_bytes(), Path(src).suffix, imgsz, 95)
        n += 1
        if outcome == RESIZED and data is not None:
            Path(link).unlink()
            Path(link).write_bytes(data)
            written += len(data)
        else:  # already small, or a format or file that stays as it is
            written += os.path.getsize(src)
    s = time.perf_counter() - t0
    full_s, full_b = s / max(n, 1) * full_images, int(written / max(n, 1) * full_images)
    free = shutil.disk_usage(beside).free
    return CacheCost(
        mode="resized",
        subset_images=n,
        subset_s=s,
        subset_bytes=written,
        full_images=full_images,
        full_s=full_s,
        full_bytes=full_b,
        available_bytes=free,
        fits=full_b * 1.1 < free,
        rule="a copy of the dataset resized to imgsz beside it (autotune resize), one process",
    )


def mosaic_on(dataset: Any) -> bool | None:
    """Whether a training dataset's transforms include mosaic with a non-zero probability; None if it cannot tell.

    Ultralytics closes mosaic by rebuilding the transforms with mosaic=0.0 (dataset.close_mosaic), so the
    Mosaic transform's probability is what the loader's workers actually apply.
    """
    seen: list[Any] = [getattr(dataset, "transforms", None)]
    while seen:
        t = seen.pop()
        if t is None:
            continue
        if type(t).__name__ == "Mosaic":
            return float(getattr(t, "p", 0.0)) > 0
        seen.extend(getattr(t, "transforms", None) or [])
    return None if getattr(dataset, "transforms", None) is None else False


def _damaged_images(staged: StagedSubset, train_kept: list[str], val_kept: list[str]) -> tuple[list[str], list[str]]:
    """(source images Ultralytics dropped as corrupt, source JPEGs it restored) among the staged ones.

    A restored JPEG is rewritten with os.replace over the staged link, so the link becomes a file: the user's
    image is untouched.
    """
    skipped, restored = [], []
    pairs = [*zip(staged.train, staged.train_sources, strict=True), *zip(staged.val, staged.val_sources, strict=True)]
    kept = set(train_kept) | set(val_kept)
    for link, source in pairs:
        if link not in kept:
            skipped.append(source)
        elif not os.path.islink(link):
            restored.append(source)
    return skipped, restored


def _live_loader_workers(loader: Any) -> int:
    return len(_loader_worker_pids(loader))


def _loader_worker_pids(loader: Any) -> list[int]:
    """Pids of the live worker processes of an Ultralytics InfiniteDataLoader (torch keeps them in _workers)."""
    it = getattr(loader, "iterator", None)
    workers = getattr(it, "_workers", None) or []
    return [w.pid for w in workers if w.is_alive()]


def _compute_only(trainer: Any, batch: dict[str, Any], iters: int, cuda: bool) -> dict[str, Any]:
    """Forward + backward on one batch already on the device, as Ultralytics' loop runs them (same AMP, loss
    scaling): the model side's ceiling, with no data loading at all. The optimizer step is not repeated here;
    its cost, timed in the window, is added per iteration by the caller."""
    import torch
    from ultralytics.utils.torch_utils import autocast

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model = trainer.model
    model.train()
    times = []
    for i in range(iters + 1):  # the first pass is untimed: the window's last batch may differ in shape
        sync()
        t0 = time.perf_counter()
        with autocast(trainer.amp, device=trainer.device.type):
            loss, _ = model(batch)
        trainer.scaler.scale(loss.sum()).backward()
        sync()
        if i:
            times.append(time.perf_counter() - t0)
        trainer.optimizer.zero_grad()  # keeps gradients from piling up; the real step is accounted apart
    return {"iters": iters, "fwd_bwd_s": times, "batch": int(batch["img"].shape[0])}


def _classify_exception(e: BaseException) -> tuple[str, str]:
    msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}".strip()
    text = str(e).lower()
    if "out of memory" in text or type(e).__name__ == "OutOfMemoryError":
        return "oom", msg
    if "dataloader worker" in text and ("killed" in text or "exited unexpectedly" in text):
        return "crashed", f"a data loader worker died ({msg})"
    return "crashed", msg


def mismatches(
    config: TrainConfig, eff: dict[str, Any], opt_args: dict[str, Any], cuda: bool, workers_expected: int | None = None
) -> list[tuple[str, str]]:
    """Every silent change Ultralytics made to what was asked, as (status, reason).

    `workers_expected`: what Ultralytics' own cap gives for the full run (machine.loader_workers); a loader
    with that many workers is what the user's training gets too, so it is no change."""
    out: list[tuple[str, str]] = []
    workers = config.workers if workers_expected is None else workers_expected
    if eff["batch"] != config.batch:
        out.append(("oom", f"Ultralytics reduced batch {config.batch} -> {eff['batch']} after running out of memory"))
    if eff["imgsz"] != config.imgsz:
        out.append(
            ("infeasible", f"Ultralytics rounded imgsz {config.imgsz} -> {eff['imgsz']} (a multiple of the stride)")
        )
    if eff["cache"] != config.cache:
        out.append(
            ("infeasible", f"Ultralytics dropped cache={config.cache} (-> {eff['cache']}): not enough RAM or disk")
        )
    if eff["workers"] != workers:
        out.append(
            (
                "infeasible",
                f"Ultralytics capped workers {workers} -> {eff['workers']} "
                f"(at most the CPU count per GPU, and no more than the loader's batches)",
            )
        )
    elif workers > 0 and eff["loader_processes"] != workers:
        out.append(("crashed", f"{eff['loader_processes']} loader processes alive, {workers} expected"))
    if cuda and config.amp and not eff["amp"]:
        out.append(("infeasible", "the AMP check failed on this GPU: Ultralytics trains in FP32"))
    if eff["accumulate"] != config.accumulate:
        out.append(("infeasible", f"accumulate {config.accumulate} expected, Ultralytics used {eff['accumulate']}"))
    if eff["optimizer"] != opt_args["optimizer"]:
        out.append(("infeasible", f"optimizer {opt_args['optimizer']} asked, Ultralytics built {eff['optimizer']}"))
    return out


def _cache_cost(config: TrainConfig, timer: _CacheTimer, full_images: int, first_image: str) -> CacheCost:
    if config.cache == "none":
        return CacheCost(mode="none")
    n = sum(r[1] for r in timer.records)
    s = sum(r[2] for r in timer.records)
    b = sum(r[3] for r in timer.records)
    if n == 0:
        return CacheCost(mode=config.cache, rule="Ultralytics built no cache")
    full_s, full_b = s / n * full_images, int(b / n * full_images)
    if config.cache == "ram":
        avail = available_ram_bytes()
        fits = cache_fits("ram", full_b, avail)
        rule = (
            f"cache=ram for the whole dataset needs {full_b / 2**30:.2f} GiB; Ultralytics requires twice that "
            f"available and {avail / 2**30:.1f} GiB is"
        )
    else:
        avail = shutil.disk_usage(Path(first_image).parent).free
        fits = cache_fits("disk", full_b, avail)
        rule = (
            f"cache=disk writes {full_b / 2**30:.2f} GiB of full-resolution .npy files beside the images; "
            f"Ultralytics requires that plus 10% free and {avail / 2**30:.1f} GiB is"
        )
    return CacheCost(
        mode=config.cache,
        subset_images=n,
        subset_s=s,
        subset_bytes=b,
        full_images=full_images,
        full_s=full_s,
        full_bytes=full_b,
        available_bytes=avail,
        fits=fits,
        rule=rule,
    )


def _limit_status(m: MemoryUse) -> tuple[str, str]:
    if m.host_limit_bytes is not None:
        peak = max(m.peak_host_bytes, m.val_peak_host_bytes or 0)
        if peak > m.host_limit_bytes:
            return "over_limit", (
                f"peak memory {peak / 2**30:.2f} GiB ({m.host_kind}) is over the limit "
                f"{m.host_limit_bytes / 2**30:.2f} GiB"
            )
    if m.gpu_limit_bytes is not None:
        peak = max(m.peak_gpu_reserved_bytes or 0, m.val_peak_gpu_bytes or 0)
        if peak > m.gpu_limit_bytes:
            return "over_limit", (
                f"peak GPU memory {peak / 2**30:.2f} GiB is over the limit {m.gpu_limit_bytes / 2**30:.2f} GiB"
            )
    return "ok", ""


def _subset_summary(staged: StagedSubset, revisits: bool) -> dict[str, Any]:
    objs = staged.train_objects
    return {
        "train_images": len(staged.train),
        "val_images": len(staged.val),
        "max_objects": max(objs) if objs else 0,
        "mean_objects": sum(objs) / len(objs) if objs else 0.0,
        "revisits": revisits,
    }


def _measure_val_batch(trainer: Any, cuda: bool) -> dict[str, Any]:
    """One validation batch (2x the training batch) as Ultralytics' validator runs it: EMA model, FP16 with AMP
    on GPU, forward and NMS. The first batch is untimed (it starts the loader's workers)."""
    import torch
    from ultralytics.utils import nms

    device = trainer.device
    model = trainer.ema.ema if trainer.ema else trainer.model
    half = cuda and trainer.amp
    model = model.half() if half else model.float()
    model.eval()
    loader = trainer.test_loader
    batches = iter(loader)
    out: dict[str, Any] = {"val_batch": loader.batch_size}
    for k in range(min(2, len(loader))):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            img = batch["img"].to(device, non_blocking=cuda)
            img = (img.half() if half else img.float()) / 255
            preds = model(img)
            nms.non_max_suppression(
                preds, 0.001, 0.7, multi_label=True, max_det=300, end2end=getattr(model, "end2end", False)
            )
        if cuda:
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if k == 0:
            out["val_first_s"] = t2 - t0
        if k == 1 or len(loader) == 1:
            out.update(val_data_s=t1 - t0, val_batch_s=t2 - t1)
        if cuda:
            out["val_peak_gpu_bytes"] = max(out.get("val_peak_gpu_bytes", 0), int(torch.cuda.max_memory_reserved()))
    return out


def run_in_subprocess(request: dict[str, Any], heartbeat: Heartbeat) -> dict[str, Any]:
    """isolate.py's entry point: plain dicts in, a plain dict out."""
    return measure(*parse_request(request), heartbeat).to_dict()
