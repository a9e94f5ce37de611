"""`autotune probe` and `autotune profile` as the user typed them, checked once before any work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autotune.errors import UserError
from autotune.measure.dataset import load_dataset
from autotune.measure.machine import check_device, default_device, default_workers, device_memory
from autotune.measure.ultralytics_glue import resolve_model
from autotune.records.config import MAX_EPOCHS, ProbeOptions, TrainConfig, Workload, check_memory_limit, whole
from autotune.units import parse_memory_limit

CPU_IMGSZ = 160  # default image size on a CPU-only machine: yolo11n at 640 px runs seconds per iteration


@dataclass(frozen=True)
class ProbeRequest:
    """One configuration to measure, with how to measure it."""

    data: str | None = None  # a data.yaml; None: the embedded default workload
    model: str = "yolo11n.yaml"
    imgsz: int | None = None  # None: 640, or CPU_IMGSZ on a CPU
    batch: int = 16
    workers: int | None = None  # None: Ultralytics' 8, capped at the CPU count
    cache: str = "none"
    device: str | None = None  # None: GPU 0 if any
    epochs: int = 100  # of the planned run: decides Ultralytics' optimizer
    optimizer: str = "auto"
    source: str = "original"
    compile: str = "off"  # a torch.compile mode (records.config.COMPILE_MODES)
    amp: bool = True  # mixed precision on a GPU; Ultralytics trains FP32 on a CPU whatever it says
    bf16: bool = False  # mixed precision in bfloat16
    val_batch: int | None = None  # None: Ultralytics' 2x the training batch
    iters: int = 20
    min_window_s: float = 2.0
    memory_limit: str | None = None
    page_cache: str = "auto"
    timeout_s: float | None = None
    keep_scratch: bool = False


@dataclass(frozen=True)
class Resolved:
    config: TrainConfig
    workload: Workload
    options: ProbeOptions
    notes: tuple[str, ...]  # said once everything is known to be good, so an error stays one line


def resolve(req: ProbeRequest, resolve_data: Callable[[str | None], str]) -> Resolved:
    """The config, workload and options of a probe request; every bad value is a UserError before any work
    (`resolve_data` may generate the embedded workload: it runs once the typed values are known to be good)."""
    whole("epochs", req.epochs, 1, MAX_EPOCHS)
    options = ProbeOptions(
        iters=req.iters,
        min_window_s=req.min_window_s,
        memory_limit=req.memory_limit,
        page_cache=req.page_cache,
        timeout_s=req.timeout_s,
        keep_scratch=req.keep_scratch,
        val_batch=req.val_batch,
    )
    if req.bf16 and not req.amp:
        raise UserError("--bf16 is mixed precision: it cannot go with --no-amp")
    device = req.device if req.device is not None else default_device()
    imgsz = req.imgsz if req.imgsz is not None else (CPU_IMGSZ if device == "cpu" else 640)
    config = TrainConfig(
        batch=req.batch,
        workers=default_workers() if req.workers is None else req.workers,
        imgsz=imgsz,
        cache=req.cache,
        device=device,
        optimizer=req.optimizer,
        source=req.source,
        compile=req.compile,
        amp="bf16" if req.bf16 else req.amp,
    )
    check_device(config.device)
    if req.memory_limit is not None:
        check_memory_limit(parse_memory_limit(req.memory_limit, device_memory(config.device)))
    model = resolve_model(req.model)
    workload = Workload(data=resolve_data(req.data), model=model, epochs=req.epochs)
    info = load_dataset(workload.data, check_labels=True)  # bad data fails here with one line, before any subprocess
    if config.batch > len(info.train):
        raise UserError(
            f"batch {config.batch} is larger than the {len(info.train)} training images: one short batch per epoch "
            "has no steady state to measure"
        )
    notes = []
    if config.device == "cpu":
        notes.append("CPU only: no GPU found or --device cpu; timings are for this CPU")
        if req.imgsz is None:
            notes.append(f"CPU only: imgsz {imgsz} by default (640 px takes minutes per probe); pass --imgsz")
    return Resolved(config, workload, options, tuple(notes))
