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
DEFAULT_MODEL = "yolo11n.yaml"
MIN_IMGSZ = 32  # Ultralytics' largest stride; smaller images cannot pass through the detector


@dataclass(frozen=True)
class TrainConfig:
    """The knobs autotune measures and tunes. Defaults are Ultralytics' own training defaults."""

    batch: int = 16
    workers: int = 8
    imgsz: int = 640
    cache: str = "none"  # none | disk | ram
    device: str = "cpu"  # "cpu" or a CUDA index such as "0"
    amp: bool = True  # Ultralytics ignores AMP on CPU
    optimizer: str = "auto"  # "auto" is resolved to Ultralytics' own choice before a probe runs
    nbs: int = 64  # nominal batch size: the optimizer steps every max(round(nbs / batch), 1) iterations
    source: str = "original"  # "resized": from a copy of the dataset pre-resized to imgsz (autotune resize)

    def __post_init__(self) -> None:
        validate_config(self)

    @property
    def accumulate(self) -> int:
        """Iterations per optimizer step, as Ultralytics computes it."""
        return accumulate(self.nbs, self.batch)

    def with_(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def label(self) -> str:
        """Short human form, e.g. 'batch=16 workers=8 imgsz=640 cache=none'."""
        label = f"batch={self.batch} workers={self.workers} imgsz={self.imgsz} cache={self.cache}"
        return label + (" source=resized" if self.source == "resized" else "")


def validate_config(c: TrainConfig) -> None:
    """Raise UserError with one clear sentence for any value Ultralytics would reject or misread."""
    if not isinstance(c.batch, int) or isinstance(c.batch, bool) or c.batch < 1:
        raise UserError(f"batch must be a whole number >= 1, got {c.batch!r}")
    if not isinstance(c.workers, int) or isinstance(c.workers, bool) or c.workers < 0:
        raise UserError(f"workers must be a whole number >= 0, got {c.workers!r}")
    if not isinstance(c.imgsz, int) or isinstance(c.imgsz, bool) or c.imgsz < MIN_IMGSZ:
        raise UserError(f"imgsz must be a whole number >= {MIN_IMGSZ} pixels, got {c.imgsz!r}")
    if c.cache not in CACHE_MODES:
        raise UserError(f"cache must be one of {', '.join(CACHE_MODES)}, got {c.cache!r}")
    if c.source not in SOURCES:
        raise UserError(f"source must be one of {', '.join(SOURCES)}, got {c.source!r}")
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

    def __post_init__(self) -> None:
        if self.compute_only_iters < 0:
            raise UserError(f"compute-only iterations must be >= 0, got {self.compute_only_iters}")
        if self.iters < 1:
            raise UserError(f"iters must be >= 1, got {self.iters}")
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
