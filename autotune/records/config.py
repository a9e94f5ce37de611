"""What to train and how: TrainConfig, Workload, ProbeOptions. Plain data, checked when made."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from autotune.errors import UserError
from autotune.units import parse_memory_limit

CACHE_MODES = ("none", "disk", "ram")
SOURCES = ("original", "resized")  # train from the files as they are, or from a copy pre-resized to imgsz
# torch.compile as Ultralytics 8.4 offers it (compile=False|"default"|"reduce-overhead"|"max-autotune-no-cudagraphs")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune-no-cudagraphs")
# Ultralytics' amp: True (FP16 autocast with loss scaling, its default), False (FP32) or "bf16" (bfloat16 autocast,
# no loss scaling; GPUs with native bfloat16 only). A CPU trains in FP32 whatever True says.
AMP_MODES: tuple[bool | str, ...] = (True, False, "bf16")
DEFAULT_MODEL = "yolo11n.yaml"
MIN_IMGSZ = 32  # Ultralytics' largest stride; smaller images cannot pass through the detector
STRIDE = 32  # Ultralytics rounds imgsz up to a multiple of the largest stride (a probe would measure another size)
# Upper bounds: far past anything that trains, so a typo (an extra zero or three) is one clear line, not an hour
# of staging or a MemoryError. Ultralytics' own AutoBatch stops at 1024; an H200 fits batch ~2000 at 640 px.
MAX_BATCH = 4096
MAX_IMGSZ = 8192
MAX_WORKERS = 1024  # Ultralytics caps workers at the CPU count itself (a cap the full run shares: warned, not refused)
MAX_EPOCHS = 100_000
MAX_ITERS = 100_000
MIN_MEMORY_LIMIT = 256 * 2**20  # bytes: below what any training process needs, so nothing could fit
MAX_WINDOW_S = 600.0  # seconds: a window or a simulated delay longer than this is a typo
# Ultralytics' spelling of the optimizers it builds ("auto" picks one for the run's length)
OPTIMIZERS = ("SGD", "MuSGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSprop", "auto")


@dataclass(frozen=True)
class TrainConfig:
    """The knobs autotune measures and tunes. Defaults are Ultralytics' own training defaults."""

    batch: int = 16
    workers: int = 8
    imgsz: int = 640
    cache: str = "none"  # none | disk | ram
    device: str = "cpu"  # "cpu" or a CUDA index such as "0"
    amp: bool | str = True  # AMP_MODES; Ultralytics ignores True on a CPU
    optimizer: str = "auto"  # "auto" is resolved to Ultralytics' own choice before a probe runs
    nbs: int = 64  # nominal batch size: the optimizer steps every max(round(nbs / batch), 1) iterations
    source: str = "original"  # "resized": from a copy of the dataset pre-resized to imgsz (autotune resize)
    compile: str = "off"  # a torch.compile mode (COMPILE_MODES): compiled at the first iteration, a one-time cost

    def __post_init__(self) -> None:
        validate_config(self)

    @property
    def accumulate(self) -> int:
        """Iterations per optimizer step, as Ultralytics computes it."""
        return accumulate(self.nbs, self.batch)

    def with_(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.compile == "off":  # as before the compile lever: keys hashed from older configs still match
            del d["compile"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def label(self) -> str:
        """Short human form, e.g. 'batch=16 workers=8 imgsz=640 cache=none'."""
        label = f"batch={self.batch} workers={self.workers} imgsz={self.imgsz} cache={self.cache}"
        label += " source=resized" if self.source == "resized" else ""
        label += f" compile={self.compile}" if self.compile != "off" else ""
        return label + ("" if self.amp is True else f" amp={amp_word(self.amp)}")

    def ultralytics_compile(self) -> bool | str:
        """Ultralytics' `compile` argument for this config."""
        return False if self.compile == "off" else self.compile


def amp_word(amp: bool | str) -> str:
    """on, off or bf16."""
    return amp if isinstance(amp, str) else ("on" if amp else "off")


def whole(name: str, value: Any, low: int, high: int, unit: str = "") -> int:
    """`value` if it is a whole number in [low, high], else a UserError naming `name` and the bounds."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise UserError(f"{name} must be a whole number from {low} to {high}{unit}, got {value!r}")
    return value


def validate_config(c: TrainConfig) -> None:
    """Raise UserError with one clear sentence for any value Ultralytics would reject or misread."""
    whole("batch", c.batch, 1, MAX_BATCH)
    whole("workers", c.workers, 0, MAX_WORKERS)
    whole("imgsz", c.imgsz, MIN_IMGSZ, MAX_IMGSZ, " pixels")
    if c.imgsz % STRIDE:
        up = -(-c.imgsz // STRIDE) * STRIDE
        raise UserError(
            f"imgsz must be a multiple of {STRIDE} (Ultralytics would train {c.imgsz} at {up}), got {c.imgsz}"
        )
    if c.optimizer.lower() not in {o.lower() for o in OPTIMIZERS}:
        raise UserError(f"unknown optimizer {c.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
    if c.cache not in CACHE_MODES:
        raise UserError(f"cache must be one of {', '.join(CACHE_MODES)}, got {c.cache!r}")
    if c.source not in SOURCES:
        raise UserError(f"source must be one of {', '.join(SOURCES)}, got {c.source!r}")
    if c.compile not in COMPILE_MODES:
        raise UserError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {c.compile!r}")
    if not any(c.amp is m for m in AMP_MODES[:2]) and c.amp != "bf16":
        raise UserError(f"amp must be on (True), off (False) or bf16, got {c.amp!r}")
    if c.amp == "bf16" and c.device == "cpu":
        raise UserError("amp=bf16 needs a CUDA GPU with bfloat16 (Ultralytics autocasts bfloat16 on CUDA only)")
    if c.nbs < 1:
        raise UserError(f"nbs must be >= 1, got {c.nbs!r}")
    if not re.fullmatch(r"cpu|\d+", c.device):
        raise UserError(f"device must be 'cpu' or a CUDA device index such as '0', got {c.device!r}")


@dataclass(frozen=True)
class Workload:
    """The dataset and model being trained, and the run being planned (its epochs pick the optimizer)."""

    data: str  # absolute path of a data.yaml
    model: str = DEFAULT_MODEL  # an Ultralytics model YAML (built from scratch) or a local .pt file
    epochs: int = 100  # epochs of the planned full run

    def __post_init__(self) -> None:
        whole("epochs", self.epochs, 1, MAX_EPOCHS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Workload:
        return cls(**{k: d[k] for k in ("data", "model", "epochs") if k in d})


@dataclass(frozen=True)
class ProbeOptions:
    """How one probe measures: window length, warm-up bounds, limits and where it stages files."""

    iters: int = 20  # measured iterations after warm-up
    warmup_min: int = 3  # always discarded: the first iterations were 3-13x slower here
    warmup_max: int = 30  # give up waiting for times to settle after this many
    memory_limit: str | None = None  # "0.9" (fraction) or "20GiB"; GPU memory on CUDA, RAM on CPU
    page_cache: str = "auto"  # auto | warm | cold | asis: file state before the probe reads them
    timeout_s: float | None = None  # hard cap; None scales with the predicted duration
    seed: int = 0  # subset selection
    scratch: str | None = None  # folder for staged subsets; default under the user cache folder
    keep_scratch: bool = False
    utilisation: bool = False  # sample CPU, RSS and GPU at ~10 Hz during the window (autotune profile)
    compute_only_iters: int = 0  # then time this many forward+backward passes on one batch already on the device
    py_spy: bool = False  # record the loader workers with py-spy during the window
    mosaic: bool = True  # False: mosaic closed for the whole window, as in a run's last close_mosaic epochs
    min_window_s: float = 2.0  # the window also lasts this long, within its cap (a fast GPU's 20 iterations: ~1 s)
    first_iter_delay_s: float = 0.0  # seconds added to the first iteration: a GPU's slow start, simulated (bench)
    val_batch: int | None = None  # validation batch; None: Ultralytics' 2x the training batch

    def __post_init__(self) -> None:
        if self.compute_only_iters < 0:
            raise UserError(f"compute-only iterations must be >= 0, got {self.compute_only_iters}")
        whole("iters", self.iters, 1, MAX_ITERS)
        if self.val_batch is not None:
            whole("validation batch", self.val_batch, 1, MAX_BATCH)
        if self.timeout_s is not None and not (0 < self.timeout_s < math.inf):
            raise UserError(f"timeout must be a number of seconds > 0, got {self.timeout_s!r}")
        for name in ("min_window_s", "first_iter_delay_s"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v <= MAX_WINDOW_S):
                raise UserError(f"{name.replace('_', ' ')} must be 0..{MAX_WINDOW_S:g} seconds, got {v!r}")
        if self.warmup_min < 0 or self.warmup_max < self.warmup_min:
            raise UserError(f"warm-up bounds must satisfy 0 <= min <= max, got {self.warmup_min}, {self.warmup_max}")
        if self.page_cache not in ("auto", "warm", "cold", "asis"):
            raise UserError(f"page-cache must be auto, warm, cold or asis, got {self.page_cache!r}")
        if self.memory_limit is not None:
            parse_memory_limit(self.memory_limit, total_bytes=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeOptions:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def accumulate(nbs: int, batch: int) -> int:
    """Iterations per optimizer step: Ultralytics steps every max(round(nbs / batch), 1) iterations."""
    return max(round(nbs / batch), 1)


def batches_per_epoch(images: int, batch: int) -> int:
    """Iterations of one epoch: images / batch, rounded up (Ultralytics keeps the short last batch)."""
    return math.ceil(images / batch) if batch > 0 else 0


def check_memory_limit(limit_bytes: int) -> int:
    """A memory limit some training could fit under, else a UserError (checked before any probe)."""
    if limit_bytes < MIN_MEMORY_LIMIT:
        raise UserError(
            f"memory limit {limit_bytes / 2**20:.0f} MiB is below what any training process needs (~256 MiB): "
            "nothing fits"
        )
    return limit_bytes
