"""The probe's measurement, inside its subprocess: stage a subset, train with Ultralytics, time every iteration.

It trains with the requested settings through Ultralytics' own trainer, times every iteration from its callbacks
(hooks.py), stops by raising once the window is full, then times two passes of Ultralytics' validator (passes.py).
probe.probe() runs it through isolate.py; nothing here is meant to run in the caller's process.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autotune.measure import pagecache, torchcompile
from autotune.measure.hooks import Heartbeat, ProbeHooks, Probes, WindowFull
from autotune.measure.machine import PeakMemorySampler, UtilisationSampler, available_ram_bytes
from autotune.measure.optimizer import optimizer_args
from autotune.measure.passes import compute_only, measure_val_pass
from autotune.measure.probe import parse_request
from autotune.measure.staging import (
    PageCachePlan,
    Staging,
    damage_warnings,
    damaged_images,
    scratch_room,
    set_page_cache,
    stage_subset,
    subset_summary,
    window_cap,
)
from autotune.measure.stats import settle_window, summarize
from autotune.measure.timing import IterationRecorder
from autotune.measure.ultralytics_glue import (
    CacheTimer,
    cache_fits,
    close_loaders,
    loader_worker_pids,
    mismatches,
    patch_downloads,
    val_batch_of,
)
from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.probe import (
    CacheCost,
    CompileCost,
    FileState,
    IterStats,
    MemoryUse,
    ProbeResult,
    failed,
    now_iso,
)
from autotune.records.status import CRASHED, INFEASIBLE, OK, OVER_LIMIT
from autotune.status import classify_exception
from autotune.units import parse_memory_limit


@dataclass(frozen=True)
class Limits:
    """The memory limit, in bytes, where it applies: GPU memory on CUDA (enforced), RAM on a CPU (observed)."""

    gpu: int | None = None
    host: int | None = None


def set_limits(config: TrainConfig, options: ProbeOptions) -> Limits:
    """On a GPU the limit is enforced, not only observed: the allocator raises OOM past this fraction."""
    import torch

    if config.device != "cpu":
        dev = torch.device(f"cuda:{config.device}")
        total = torch.cuda.get_device_properties(dev).total_memory
        gpu = None
        if options.memory_limit:
            gpu = parse_memory_limit(options.memory_limit, total)
            torch.cuda.set_per_process_memory_fraction(min(gpu / total, 1.0), dev)
        torch.cuda.reset_peak_memory_stats(dev)
        return Limits(gpu=gpu)
    if options.memory_limit:
        import psutil

        return Limits(host=parse_memory_limit(options.memory_limit, psutil.virtual_memory().total))
    return Limits()


def train_args(
    config: TrainConfig, workload: Workload, options: ProbeOptions, data_yaml: str, scratch: Path, opt: dict[str, Any]
) -> dict[str, Any]:
    """What the probe asks of Ultralytics' trainer."""
    return {
        "data": data_yaml,
        "epochs": workload.epochs,  # the planned run's: Ultralytics caps accumulate by iterations x epochs
        "batch": config.batch,
        "imgsz": config.imgsz,
        "workers": config.workers,
        "cache": False if config.cache == "none" else config.cache,
        "device": config.device,
        "amp": config.amp,
        "compile": config.ultralytics_compile(),
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
        **opt,
    }


def machine_probes(
    config: TrainConfig, options: ProbeOptions, s: Staging, pc: PageCachePlan, scratch: Path, found: dict[str, Any]
) -> Probes:
    """What the hooks do to the machine: page-cache readings, .npy eviction, profilers. Findings go to `found`."""
    cuda = config.device != "cpu"
    profilers: dict[str, Any] = {}

    def at_setup(trainer: Any) -> None:
        ds = trainer.train_loader.dataset
        found["damaged"] = damaged_images(s.staged, ds.im_files, trainer.test_loader.dataset.im_files)
        if config.cache == "disk" and pc.mode == "cold":  # the fresh .npy files sit in the page cache: evict them
            pagecache.drop(str(f) for f in ds.npy_files)
            found["npy_dropped"] = True

    def at_start() -> None:
        found["resident_at_start"] = pagecache.resident_fraction(pc.sources)

    def start_profilers(trainer: Any) -> None:
        if options.utilisation:
            profilers["utilisation"] = UtilisationSampler(gpu_index=int(config.device) if cuda else None)
            profilers["utilisation"].start()
        if options.py_spy:
            from autotune.measure.pyspy import SpyRecorder

            # the loader workers, or the main process where it loads the data itself (workers=0)
            pids = loader_worker_pids(trainer.train_loader) or [os.getpid()]
            profilers["py_spy"] = SpyRecorder(pids, scratch / "py-spy")
            profilers["py_spy"].start()

    def stop_profilers() -> dict[str, Any]:
        return {name: p.stop().to_dict() for name, p in profilers.items()}

    return Probes(at_setup, at_start, start_profilers, stop_profilers)


@dataclass(frozen=True)
class Setup:
    """Everything decided before training starts."""

    config: TrainConfig
    workload: Workload
    options: ProbeOptions
    staging: Staging
    page_cache: PageCachePlan
    limits: Limits
    opt_args: dict[str, Any]  # the optimizer, pinned to the full run's choice
    optimizer_reason: str
    t_start: float


@dataclass
class Window:
    """How training the window went: status, the hooks' state, memory peaks, the validation batch."""

    status: str
    reason: str
    hooks: ProbeHooks
    val: dict[str, Any]
    host_peak: int
    host_kind: str
    children: int
    gpu_peak: tuple[int | None, int | None]
    compile_cost: CompileCost | None = None


def compile_cost(config: TrainConfig, hooks: ProbeHooks, n_train: int, cuda: bool) -> tuple[str, str, CompileCost]:
    """(status, reason, cost) of torch.compile once the window is full: the model must really be compiled; the
    compile seconds so far are the first iterations'; the epoch's short last batch is compiled and timed now."""
    rec = hooks.recorder
    first_iter_s = rec.data_wait_s[0] + rec.compute_s[0] if rec.compute_s else 0.0
    first = torchcompile.compile_seconds()
    cost = CompileCost(mode=config.compile, compile_s=first if first is not None else first_iter_s,
                       first_iter_s=first_iter_s)  # fmt: skip
    if not torchcompile.is_compiled(hooks.trainer.model):
        why = "Ultralytics trained uncompiled (torch.compile refused or failed: its warning is in the probe's log)"
        return INFEASIBLE, f"compile={config.compile}: {why}", cost
    n = torchcompile.short_batch(n_train, config.batch)
    if n and hooks.last_batch is not None:
        # a new shape compiles about as long as the first did, or longer (measured here: 159 s, then 243 s)
        hooks.heartbeat({"phase": "recompile", "eta_s": max(2 * cost.compile_s, cost.first_iter_s, 60.0)})
        seconds = torchcompile.time_short_batch(hooks.trainer, hooks.last_batch, n, cuda)
        cost = replace(cost, recompile_s=seconds, short_batch=n)
    return OK, "", cost


def train_window(
    config: TrainConfig, workload: Workload, options: ProbeOptions, hooks: ProbeHooks, args: dict, n_train: int
) -> Window:
    """Train until the hooks stop it, then run the passes timed by hand; loaders are closed whatever happens."""
    import torch
    from ultralytics import YOLO

    cuda = config.device != "cpu"
    patch_downloads()
    model = YOLO(workload.model)
    for event, fn in hooks.callbacks().items():
        model.add_callback(event, fn)
    status, reason, val, compiled = OK, "", {}, None
    with PeakMemorySampler() as sampler:
        try:
            model.train(**args)
            status, reason = CRASHED, "training ended before the measured window was full"
        except WindowFull:
            sampler.sample()  # the window's end: every loader worker alive, the step's memory still held
            if config.compile != "off":
                try:
                    status, reason, compiled = compile_cost(config, hooks, n_train, cuda)
                except Exception as e:  # the short batch's recompile failed: a compiled run would fail there too
                    status, reason = classify_exception(e)
                    reason = f"compile={config.compile}, recompiling for the epoch's short last batch: {reason}"
            if status == OK and options.compute_only_iters and hooks.last_batch is not None:
                hooks.heartbeat({"phase": "compute-only"})
                try:
                    hooks.extras["compute_only"] = compute_only(
                        hooks.trainer, hooks.last_batch, options.compute_only_iters, cuda
                    )
                except Exception as e:  # an OOM here is reported, the window's measurement stands
                    hooks.extras["compute_only"] = {"error": classify_exception(e)[1]}
        except Exception as e:  # classified, never swallowed: the status carries it to the caller
            status, reason = classify_exception(e)
            traceback.print_exc()
        host_peak = sampler.peak_bytes
        gpu_peak = (
            (int(torch.cuda.max_memory_reserved()), int(torch.cuda.max_memory_allocated())) if cuda else (None, None)
        )
        if status == OK and hooks.trainer is not None:
            hooks.heartbeat({"phase": "validate"})
            # the window drained the training loader's queue; its workers would refill it while validation is
            # timed, competing for the cores (in a real run validation starts with that queue full, workers idle)
            close_loaders(hooks.trainer, ("train_loader",))
            sampler.reset_peak()
            try:
                val = measure_val_pass(hooks.trainer, cuda)
            except Exception as e:  # an OOM here is the point of the check: validation runs at 2x batch
                status, reason = classify_exception(e)
                reason = f"validation (batch {val_batch_of(config.batch, options.val_batch)}): {reason}"
            val["val_peak_host_bytes"] = sampler.peak_bytes
        if hooks.trainer is not None:
            close_loaders(hooks.trainer)
    return Window(status, reason, hooks, val, host_peak, sampler.kind, sampler.max_children, gpu_peak, compiled)


def measure(
    config: TrainConfig,
    workload: Workload,
    options: ProbeOptions,
    scratch: Path,
    heartbeat: Heartbeat = lambda _: None,
) -> ProbeResult:
    """Run one probe in this process. Meant for a subprocess: it patches Ultralytics and trains."""
    t_start = time.perf_counter()
    heartbeat({"phase": "staging"})
    s = stage_subset(config, workload, options, scratch, heartbeat)
    import torch

    cuda = config.device != "cpu"
    if cuda and not torch.cuda.is_available():
        return failed(INFEASIBLE, f"device {config.device} requested but CUDA is not available", config, workload)
    if config.amp == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        # Ultralytics' autocast raises at the first iteration; say so before staging a training run
        return failed(INFEASIBLE, "amp=bf16: this GPU has no native bfloat16", config, workload, warnings=s.warnings)
    if config.compile != "off":
        why = torchcompile.unavailable(config.device)
        if why:
            return failed(INFEASIBLE, f"compile={config.compile}: {why}", config, workload, warnings=s.warnings)
        torchcompile.private_cache(scratch / "inductor")
    room = scratch_room(s, config, scratch)
    if room:
        return failed(INFEASIBLE, room, config, workload, warnings=s.warnings)
    pc = set_page_cache(s, config, options)
    # The optimizer is pinned to the full run's choice (see optimizer.auto_optimizer).
    opt_args, optimizer_reason = optimizer_args(config, len(s.info.train), s.info.nc, workload.epochs)
    limits = set_limits(config, options)
    recorder = IterationRecorder(
        iters=options.iters,
        warmup_min=options.warmup_min,
        warmup_max=options.warmup_max,
        window=settle_window(s.workers),
        period=max(s.workers, 1),
        sync=(lambda: torch.cuda.synchronize()) if cuda else (lambda: None),
        min_window_s=options.min_window_s,
        max_iters=window_cap(options, config.batch, s.workers),
    )
    found: dict[str, Any] = {}
    hooks = ProbeHooks(
        workers=config.workers,
        iters=options.iters,
        warmup_max=options.warmup_max,
        recorder=recorder,
        heartbeat=heartbeat,
        keep_last_batch=bool(options.compute_only_iters) or config.compile != "off",
        first_iter_delay_s=options.first_iter_delay_s,
        val_batch=options.val_batch,
        machine=machine_probes(config, options, s, pc, scratch, found),
    )
    cache_timer = CacheTimer()
    undo = cache_timer.install()
    try:
        args = train_args(config, workload, options, s.staged.data_yaml, scratch, opt_args)
        w = train_window(config, workload, options, hooks, args, len(s.info.train))
    finally:
        undo()
    if w.hooks.trainer is None or not w.hooks.eff:
        status, reason = (
            (CRASHED, "Ultralytics stopped before training started") if w.status == OK else (w.status, w.reason)
        )
        r = failed(status, reason, config, workload, warnings=s.warnings, options=options.to_dict())
        return ProbeResult(**{**r.__dict__, "duration_s": time.perf_counter() - t_start})
    setup = Setup(config, workload, options, s, pc, limits, opt_args, optimizer_reason, t_start)
    return assemble(setup, w, cache_timer.records, found)


def window_stats(setup: Setup, w: Window) -> tuple[IterStats | None, bool, tuple[str, str], list[str]]:
    """(statistics of the measured window, whether it revisited images, (status, reason), warnings)."""
    rec, eff, options = w.hooks.recorder, w.hooks.eff, setup.options
    if w.status != OK:
        return None, False, (w.status, w.reason), []
    warnings = []
    start, end = rec.window_range()
    used = end + 1
    revisits = used * eff["batch"] > len(setup.staging.staged.train)
    if revisits:
        warnings.append(
            f"the dataset has {len(setup.staging.info.train)} training images, fewer than the {used} batches of this "
            "probe need: later iterations revisit images, which the page cache and mosaic buffer serve"
        )
    if not rec.settled:
        warnings.append(
            f"iteration times had not settled after {options.warmup_max} warm-up iterations; "
            "measured anyway, expect more noise"
        )
    choice = rec.chosen
    if choice is not None and choice.produced is not None and choice.produced < options.iters:
        warnings.append(
            f"the loader finished only {max(choice.produced, 0)} batches in the {end - start} measured iterations "
            f"(its queue went {choice.queue_start} -> {choice.queue_end} batches ready): expect more noise"
        )
    if not rec.step_s:
        return None, revisits, (CRASHED, "no optimizer step was seen"), warnings
    wait, compute = rec.window_times()
    stats = summarize(
        wait,
        compute,
        rec.steady_steps() or rec.step_s,
        eff["batch"],
        eff["accumulate"],
        images=rec.window_images(),
        produced=max(choice.produced, 1) if choice and choice.produced is not None else None,
        queue=(choice.queue_start, choice.queue_end) if choice else (None, None),
    )
    return stats, revisits, (OK, ""), warnings


# what measure_val_pass (and the sampler around it) reports, as MemoryUse names it
VAL_FIELDS = (
    "val_batch",
    "val_batch_s",
    "val_data_s",
    "val_batches",
    "val_pass_s",
    "val_fixed_s",
    "val_first_pass_s",
    "val_peak_gpu_bytes",
    "val_peak_host_bytes",
)


def memory_use(setup: Setup, w: Window) -> MemoryUse:
    """Peaks of the window and of the validation batch, with the limit where it applies."""
    return MemoryUse(
        peak_host_bytes=w.host_peak,
        host_kind=w.host_kind,
        host_limit_bytes=setup.limits.host,
        loader_processes=w.hooks.loader_procs,
        child_processes=w.children,
        peak_gpu_reserved_bytes=w.gpu_peak[0],
        peak_gpu_allocated_bytes=w.gpu_peak[1],
        gpu_limit_bytes=setup.limits.gpu,
        **{k: w.val.get(k) for k in VAL_FIELDS},
    )


def silent_changes(setup: Setup, effective: dict[str, Any]) -> list[tuple[str, str]]:
    """Every setting Ultralytics changed from what the probe asked (mosaic included), as (status, reason)."""
    config, options = setup.config, setup.options
    changed = mismatches(config, effective, setup.opt_args, config.device != "cpu", setup.staging.workers)
    if effective.get("mosaic") is not None and effective["mosaic"] != options.mosaic:
        on = {True: "on", False: "off"}
        changed.append(
            (INFEASIBLE, f"mosaic {on[options.mosaic]} asked, Ultralytics trained with it {on[effective['mosaic']]}")
        )
    return changed


def assemble(
    setup: Setup, w: Window, cache_records: list[tuple[str, int, float, int, int]], found: dict[str, Any]
) -> ProbeResult:
    """The result: window statistics, every silent change Ultralytics made, memory against the limit, costs. The
    first problem found decides the status: the run itself, a changed setting, a cache that does not fit, memory."""
    config, s, pc, rec = setup.config, setup.staging, setup.page_cache, w.hooks.recorder
    stats, revisits, (status, reason), warnings = window_stats(setup, w)
    effective = {**w.hooks.eff, "loader_processes": w.hooks.loader_procs}
    changed = silent_changes(setup, effective)
    cache = cache_cost(config, cache_records, len(s.info.train) + len(s.info.val), s.info.train[0])
    memory = memory_use(setup, w)
    for problem in (changed[0] if changed else None, (INFEASIBLE, cache.rule) if cache.fits is False else None):
        if status == OK and problem is not None:
            status, reason = problem
    if status == OK:
        status, reason = limit_status(memory)
    resident_start = found.get("resident_at_start")
    return ProbeResult(
        status=status,
        reason=reason,
        requested=config.to_dict(),
        effective={**effective, "optimizer_reason": setup.optimizer_reason},
        stats=stats,
        memory=memory,
        cache=cache,
        files=FileState(
            resident_before=pc.resident_before,
            resident_at_start=resident_start,
            read=pagecache.describe(resident_start),
            regime=pc.regime,
            regime_reason=pc.regime_reason,
            action=pc.action + (" (and the .npy cache dropped)" if found.get("npy_dropped") else ""),
        ),
        source_cost=s.source_cost,
        compile_cost=w.compile_cost,
        workload={**setup.workload.to_dict(), "n_train": len(s.info.train), "n_val": len(s.info.val), "nc": s.info.nc},
        subset=subset_summary(s.staged, revisits),
        timings={"data_wait_s": rec.data_wait_s, "compute_s": rec.compute_s, "step_s": rec.step_s,
                 "step_iters": rec.step_iters, "warmup": rec.warmup, "settled": rec.settled, "window": rec.window,
                 "images": rec.images, "queue_depth": [rec.depth_at_mark, *rec.depths],
                 "window_range": list(rec.window_range())},
        warnings=(*s.warnings, *warnings, *damage_warnings(*found.get("damaged", ([], [])))),
        options=setup.options.to_dict(),
        extras=w.hooks.extras,
        created=now_iso(),
        duration_s=time.perf_counter() - setup.t_start,
    )  # fmt: skip


def cache_cost(
    config: TrainConfig, records: list[tuple[str, int, float, int, int]], full_images: int, first_image: str
) -> CacheCost:
    """The one-time cost of the image cache: measured on the subset (CacheTimer's records), extrapolated to the
    dataset (train + val). A disk cache with .npy files missing afterwards (a disk filled up) does not fit."""
    if config.cache == "none":
        return CacheCost(mode="none")
    n = sum(r[1] for r in records)
    s = sum(r[2] for r in records)
    b = sum(r[3] for r in records)
    written = sum(r[4] for r in records)
    if n == 0:
        return CacheCost(mode=config.cache, rule="Ultralytics built no cache")
    if written < n:
        return CacheCost(
            mode=config.cache,
            subset_images=n,
            subset_s=s,
            subset_bytes=b,
            fits=False,
            rule=f"cache=disk wrote {written} of {n} .npy files in the probe's scratch folder: the disk filled up "
            "(Ultralytics only warns, and reads the rest from the images, so the cache's speed is not measured)",
        )
    full_s, full_b = s / n * full_images, int(b / n * full_images)
    gib = 2**30
    if config.cache == "ram":
        avail = available_ram_bytes()
        rule = (
            f"cache=ram for the whole dataset needs {full_b / gib:.2f} GiB; Ultralytics requires twice that "
            f"available and {avail / gib:.1f} GiB is"
        )
    else:
        avail = shutil.disk_usage(Path(first_image).parent).free
        rule = (
            f"cache=disk writes {full_b / gib:.2f} GiB of full-resolution .npy files beside the images; "
            f"Ultralytics requires that plus 10% free and {avail / gib:.1f} GiB is"
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
        fits=cache_fits(config.cache, full_b, avail),
        rule=rule,
    )


def limit_status(m: MemoryUse) -> tuple[str, str]:
    """over_limit where the peak (training or validation) is past the user's limit."""
    gib = 2**30
    if m.host_limit_bytes is not None:
        peak = max(m.peak_host_bytes, m.val_peak_host_bytes or 0)
        if peak > m.host_limit_bytes:
            return OVER_LIMIT, (
                f"peak memory {peak / gib:.2f} GiB ({m.host_kind}) is over the limit {m.host_limit_bytes / gib:.2f} GiB"
            )
    if m.gpu_limit_bytes is not None:
        peak = max(m.peak_gpu_reserved_bytes or 0, m.val_peak_gpu_bytes or 0)
        if peak > m.gpu_limit_bytes:
            return (
                OVER_LIMIT,
                f"peak GPU memory {peak / gib:.2f} GiB is over the limit {m.gpu_limit_bytes / gib:.2f} GiB",
            )
    return OK, ""


def run_in_subprocess(request: dict[str, Any], heartbeat: Heartbeat) -> dict[str, Any]:
    """isolate.py's entry point: plain dicts in, a plain dict out."""
    return measure(*parse_request(request), heartbeat).to_dict()
