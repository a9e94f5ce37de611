"""What to train and how: TrainConfig, Workload, ProbeOptions, and parsing of the strings users type."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from autotune.errors import UserError

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
        return max(round(self.nbs / self.batch), 1)

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


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|hr|hours?|m|min|mins|minutes?|s|sec|secs|seconds?)?\s*$", re.I)
_UNIT_S = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> float:
    """'20min' -> 1200.0 seconds; '90s', '1h', '1.5h', '45' (minutes) are accepted. Must be > 0."""
    total = 0.0
    parts = re.findall(r"\d+(?:\.\d+)?\s*[a-zA-Z]*", text or "")
    if not parts or "".join(p.replace(" ", "") for p in parts) != (text or "").replace(" ", ""):
        raise UserError(f"cannot read duration {text!r}: use e.g. 20min, 90s, 1h, 1h30m")
    for part in parts:
        m = _DURATION.match(part)
        if not m:
            raise UserError(f"cannot read duration {text!r}: use e.g. 20min, 90s, 1h, 1h30m")
        unit = (m.group(2) or "m").lower()[0]
        total += float(m.group(1)) * _UNIT_S[unit]
    if total <= 0:
        raise UserError(f"duration must be more than zero, got {text!r}")
    return total


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.I)


def parse_memory_limit(text: str, total_bytes: int) -> int:
    """'0.9' -> 90% of total_bytes; '20GiB', '20GB', '512MiB' -> bytes (binary units either way)."""
    s = str(text).strip()
    try:
        frac = float(s)
    except ValueError:
        frac = None
    if frac is not None:
        if not 0 < frac <= 1:
            raise UserError(f"memory limit fraction must be in (0, 1], got {text!r}; or give a size like 20GiB")
        return int(frac * total_bytes)
    m = _SIZE.match(s)
    if not m or not m.group(2):
        raise UserError(f"cannot read memory limit {text!r}: use a fraction like 0.9 or a size like 20GiB")
    power = "BKMGT".index(m.group(2)[0].upper())
    value = int(float(m.group(1)) * 1024**power)
    if value <= 0:
        raise UserError(f"memory limit must be more than zero, got {text!r}")
    return value


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m:
        raise UserError(f"cannot read size {text!r}: use WIDTHxHEIGHT, e.g. 1280x720")
    w, h = int(m.group(1)), int(m.group(2))
    if w < MIN_IMGSZ or h < MIN_IMGSZ:
        raise UserError(f"size must be at least {MIN_IMGSZ}x{MIN_IMGSZ}, got {text!r}")
    return w, h


def parse_assignments(text: str) -> dict[str, str]:
    """'batch=16,workers=8' -> {'batch': '16', 'workers': '8'}."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(f"cannot read {item!r}: use key=value pairs separated by commas, e.g. batch=16,workers=8")
        out[key.strip()] = value.strip()
    return out


def resolve_model(model: str) -> str:
    """Return a model reference Ultralytics can build without any download, or raise UserError.

    YAML names such as 'yolo11n.yaml' are looked up in Ultralytics' bundled model configs; a .pt must be a
    local file, because a bare name like 'yolo11n.pt' would make Ultralytics download weights.
    """
    p = Path(model).expanduser()
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        if p.is_file():
            return str(p.resolve())
        from autotune.ultralytics_log import import_quietly

        import_quietly()
        from ultralytics.nn.tasks import yaml_model_load

        try:  # resolves scale names: 'yolo11n.yaml' is 'yolo11.yaml' at scale n
            yaml_model_load(model)
        except (FileNotFoundError, AssertionError) as e:
            raise UserError(f"unknown model {model!r}: no such YAML file or Ultralytics model config") from e
        return model
    if suffix == ".pt":
        if p.is_file():
            return str(p.resolve())
        raise UserError(
            f"model file {model!r} not found; autotune never downloads weights: give a local .pt path "
            f"or a model YAML such as {DEFAULT_MODEL} (built from scratch)"
        )
    raise UserError(f"unknown model {model!r}: give an Ultralytics model YAML (e.g. {DEFAULT_MODEL}) or a local .pt")


def planned_iterations(n_train: int, batch: int, nbs: int, epochs: int) -> int:
    """The iteration count Ultralytics feeds its 'auto' optimizer rule: ceil(images / max(batch, nbs)) x epochs."""
    return math.ceil(n_train / max(batch, nbs)) * epochs


@dataclass(frozen=True)
class OptimizerChoice:
    name: str
    lr0: float
    momentum: float
    reason: str


def auto_optimizer(n_train: int, batch: int, nbs: int, epochs: int, nc: int) -> OptimizerChoice:
    """What Ultralytics 8.4's optimizer='auto' picks for the full run (BaseTrainer.build_optimizer).

    A probe trains on a small subset for a moment, so left on 'auto' it would always get AdamW; the full run's
    choice depends on its own length: MuSGD (extra Newton-Schulz work per step) above 10,000 iterations.
    """
    iterations = planned_iterations(n_train, batch, nbs, epochs)
    if iterations > 10000:
        return OptimizerChoice("MuSGD", 0.01, 0.9, f"{iterations} planned iterations > 10000")
    lr_fit = round(0.002 * 5 / (4 + nc), 6)
    return OptimizerChoice("AdamW", lr_fit, 0.9, f"{iterations} planned iterations <= 10000")


def optimizer_args(config: TrainConfig, n_train: int, nc: int, epochs: int) -> tuple[dict[str, Any], str]:
    """The Ultralytics optimizer arguments that pin a config's optimizer for a run of `epochs`, and why.

    'auto' is resolved here, as Ultralytics resolves it for that run (auto_optimizer), and passed explicitly with
    the learning rate, momentum and bias warm-up Ultralytics' own 'auto' sets; a named optimizer passes as it is.
    A probe and the training run it predicts both call this, so they build the same optimizer.
    """
    if config.optimizer != "auto":
        return {"optimizer": config.optimizer}, "as requested"
    choice = auto_optimizer(n_train, config.batch, config.nbs, epochs, nc)
    args = {"optimizer": choice.name, "lr0": choice.lr0, "momentum": choice.momentum, "warmup_bias_lr": 0.0}
    return args, f"auto -> {choice.name} ({choice.reason}, as Ultralytics decides for the full run)"
