"""The search space and its feasibility rules. The only module that knows the bounds.

Optuna 5 refuses a categorical parameter whose choices change within a study (RDB storage checks it), so a
Space is frozen into the study when the study is created; a choice that is impossible now (cache=ram without
the RAM for it) stays in the space and becomes a constraint violation with its reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from autotune.config import CACHE_MODES, MIN_IMGSZ, SOURCES, TrainConfig
from autotune.errors import UserError

STRIDE = 32  # Ultralytics rounds imgsz up to a multiple of the largest stride
# Ultralytics' own checks before it builds a cache (BaseDataset.check_cache_ram / check_cache_disk): it needs
# twice the cache's size in available RAM, and the .npy files' size plus 10% free on disk, or it drops the cache.
RAM_MARGIN = 2.0
DISK_MARGIN = 1.1


def cache_fits(mode: str, cache_bytes: int, available: int) -> bool:
    """Ultralytics' rule for whether a cache of this size may be built with this much RAM (ram) or disk (disk)."""
    return {"ram": RAM_MARGIN, "disk": DISK_MARGIN}.get(mode, 0.0) * cache_bytes <= available


@dataclass(frozen=True)
class Space:
    batch_low: int
    batch_high: int  # batch is an integer distribution (log scale), so any seed batch inside fits
    workers_high: int  # workers 0..workers_high
    imgsz: tuple[int, ...]  # categorical
    cache: tuple[str, ...]  # categorical
    source: tuple[str, ...] = ("original",)  # categorical; ("original", "resized") where resizing can matter

    def distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, IntDistribution

        return {
            "batch": IntDistribution(self.batch_low, self.batch_high, log=self.batch_high > self.batch_low),
            "workers": IntDistribution(0, self.workers_high),
            "imgsz": CategoricalDistribution(list(self.imgsz)),
            "cache": CategoricalDistribution(list(self.cache)),
            **({"source": CategoricalDistribution(list(self.source))} if len(self.source) > 1 else {}),
        }

    def contains(self, c: TrainConfig) -> bool:
        return (
            self.batch_low <= c.batch <= self.batch_high
            and 0 <= c.workers <= self.workers_high
            and c.imgsz in self.imgsz
            and c.cache in self.cache
            and c.source in self.source
        )

    def params(self, c: TrainConfig) -> dict[str, Any]:
        p = {"batch": c.batch, "workers": c.workers, "imgsz": c.imgsz, "cache": c.cache}
        return {**p, "source": c.source} if len(self.source) > 1 else p

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.source == ("original",):  # as before the source lever: older studies keep their names
            del d["source"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Space:
        return cls(
            batch_low=int(d["batch_low"]),
            batch_high=int(d["batch_high"]),
            workers_high=int(d["workers_high"]),
            imgsz=tuple(int(x) for x in d["imgsz"]),
            cache=tuple(str(x) for x in d["cache"]),
            source=tuple(str(x) for x in d.get("source", ("original",))),
        )

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]

    def describe(self) -> str:
        return (
            f"batch {self.batch_low}-{self.batch_high}, workers 0-{self.workers_high}, "
            f"imgsz {','.join(map(str, self.imgsz))}, cache {','.join(self.cache)}"
            + (f", source {','.join(self.source)}" if len(self.source) > 1 else "")
        )


def _ints(text: str, what: str) -> list[int]:
    """'8,16,32' -> [8, 16, 32]; '8-64' -> [8, 64] (a range's ends)."""
    text = text.strip()
    m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
    try:
        values = [int(m.group(1)), int(m.group(2))] if m else [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"cannot read {what} {text!r}: give a list like 8,16,32 or a range like 8-64") from None
    if not values:
        raise UserError(f"{what} is empty")
    return values


def build_space(
    batch: str | None,
    workers: str | None,
    imgsz: str | None,
    cache: str | None,
    cpu_only: bool,
    usable_cores: int,
    baseline_imgsz: int,
    max_batch: int,
    source: str | None = None,
    source_default: tuple[str, ...] = ("original",),
) -> Space:
    """The space from the CLI's lists or ranges, with defaults that fit the machine."""
    if batch:
        b = _ints(batch, "batch")
        lo, hi = min(b), max(b)
    else:
        lo, hi = (2, min(32, max_batch)) if cpu_only else (4, max_batch)
    if lo < 1 or hi < lo:
        raise UserError(f"batch range must be >= 1 and low <= high, got {batch!r}")
    if workers:
        w = _ints(workers, "workers")
        whi = max(w)
        if min(w) < 0:
            raise UserError(f"workers must be >= 0, got {workers!r}")
    else:
        whi = min(usable_cores, 16)
    if imgsz:
        sizes = sorted(set(_ints(imgsz, "imgsz")))
    elif cpu_only:
        sizes = [96, 128, 160]
    else:
        sizes = [s for s in (320, 416, 512, 640, 800, 960, 1280) if s <= baseline_imgsz] or [baseline_imgsz]
    bad = [s for s in sizes if s < MIN_IMGSZ or s % STRIDE]
    if bad:
        raise UserError(
            f"imgsz must be multiples of {STRIDE} and >= {MIN_IMGSZ} (Ultralytics rounds others), got {bad}"
        )
    modes = tuple(x.strip() for x in cache.split(",") if x.strip()) if cache else CACHE_MODES
    unknown = [m for m in modes if m not in CACHE_MODES]
    if unknown or not modes:
        raise UserError(f"cache must be a list of {', '.join(CACHE_MODES)}, got {cache!r}")
    sources = tuple(x.strip() for x in source.split(",") if x.strip()) if source else source_default
    if not sources or [x for x in sources if x not in SOURCES]:
        raise UserError(f"source must be a list of {', '.join(SOURCES)}, got {source!r}")
    return Space(lo, hi, whi, tuple(sizes), tuple(dict.fromkeys(modes)), tuple(dict.fromkeys(sources)))


def resize_can_matter(mean_long_side: float, largest_imgsz: int, ratio: float = 2.0) -> bool:
    """Pre-resizing saves decode and resize work only where the files are much larger than what trains:
    at least `ratio` times the largest image size (1280x720 frames at 640 px, say)."""
    return mean_long_side >= ratio * largest_imgsz


@dataclass(frozen=True)
class DatasetSize:
    """What the cache rules need to know about the whole dataset."""

    n_images: int  # train + val
    mean_pixels: float  # mean width x height of the stored images
    mean_aspect: float  # mean short/long side ratio (the RAM cache resizes the long side to imgsz)

    @property
    def mean_long_side(self) -> float:
        """Pixels along the long side: width x height = long^2 x aspect."""
        return (self.mean_pixels / max(self.mean_aspect, 1e-6)) ** 0.5


def cache_bytes(size: DatasetSize, mode: str, imgsz: int) -> int:
    """Bytes a cache of the whole dataset takes: 'disk' stores full-resolution .npy, 'ram' resized images."""
    if mode == "disk":
        return int(size.n_images * size.mean_pixels * 3)
    if mode == "ram":
        return int(size.n_images * imgsz * imgsz * size.mean_aspect * 3)
    return 0


def cache_violation(size: DatasetSize, mode: str, imgsz: int, ram_available: int, disk_free: int) -> str | None:
    """Why this cache mode cannot work here (Ultralytics' own margins), or None."""
    need = cache_bytes(size, mode, imgsz)
    if mode == "ram" and not cache_fits("ram", need, ram_available):
        return (
            f"cache=ram needs {need / 2**30:.1f} GiB (twice that free, Ultralytics' rule); "
            f"{ram_available / 2**30:.1f} GiB available"
        )
    if mode == "disk" and not cache_fits("disk", need, disk_free):
        return f"cache=disk needs {need / 2**30:.1f} GiB of .npy files (+10%); {disk_free / 2**30:.1f} GiB free"
    return None


@dataclass(frozen=True)
class MemoryModel:
    """peak bytes ~ intercept + slope x batch x imgsz^2, fitted by least squares on finished trials."""

    intercept: float
    slope: float
    n: int

    def predict(self, batch: int, imgsz: int) -> float:
        return self.intercept + self.slope * batch * imgsz * imgsz


def fit_memory_model(points: list[tuple[int, int, int]]) -> MemoryModel | None:
    """Fit on (batch, imgsz, peak bytes) of feasible finished trials; None until two distinct loads exist."""
    xs = [b * s * s for b, s, _ in points]
    ys = [float(m) for _, _, m in points]
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    slope = max(slope, 0.0)  # memory never shrinks with a larger load; noise must not make it
    return MemoryModel(intercept=my - slope * mx, slope=slope, n=len(xs))


def memory_violation(model: MemoryModel | None, batch: int, imgsz: int, limit: int, margin: float = 1.0) -> str | None:
    """A reason to skip a config predicted over the limit, or None."""
    if model is None or model.n < 3:
        return None
    predicted = model.predict(batch, imgsz)
    if predicted > limit * margin:
        return (
            f"predicted peak {predicted / 2**30:.2f} GiB > limit {limit / 2**30:.2f} GiB "
            f"(memory model fitted on {model.n} trials)"
        )
    return None
