"""The search space and its feasibility rules. The only module that knows the bounds.

Optuna 5 refuses a categorical parameter whose choices change within a study (RDB storage checks it), so a
Space is frozen into the study when the study is created; a choice that is impossible now (cache=ram without
the RAM for it) stays in the space and becomes a constraint violation with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from autotune.errors import UserError
from autotune.measure.ultralytics_glue import cache_fits
from autotune.records.config import (
    CACHE_MODES,
    COMPILE_MODES,
    MAX_BATCH,
    MAX_IMGSZ,
    MAX_WORKERS,
    MIN_IMGSZ,
    SOURCES,
    STRIDE,
)
from autotune.records.search import DatasetSize, Space


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
    compile_modes: str | None = None,
) -> Space:
    """The space from the CLI's lists or ranges, with defaults that fit the machine."""
    if batch:
        b = _ints(batch, "batch")
        lo, hi = min(b), max(b)
    else:
        lo, hi = (2, min(32, max_batch)) if cpu_only else (4, max_batch)
    if lo < 1 or hi < lo or hi > MAX_BATCH:
        raise UserError(f"batch range must lie in 1-{MAX_BATCH} with low <= high, got {batch!r}")
    if workers:
        w = _ints(workers, "workers")
        whi = max(w)
        if min(w) < 0 or whi > MAX_WORKERS:
            raise UserError(f"workers must lie in 0-{MAX_WORKERS}, got {workers!r}")
    else:
        whi = min(usable_cores, 16)
    if imgsz:
        sizes = sorted(set(_ints(imgsz, "imgsz")))
    elif cpu_only:
        sizes = [96, 128, 160]
    else:
        sizes = [s for s in (320, 416, 512, 640, 800, 960, 1280) if s <= baseline_imgsz] or [baseline_imgsz]
    bad = [s for s in sizes if s < MIN_IMGSZ or s > MAX_IMGSZ or s % STRIDE]
    if bad:
        raise UserError(
            f"imgsz must be multiples of {STRIDE} from {MIN_IMGSZ} to {MAX_IMGSZ} (Ultralytics rounds others), "
            f"got {bad}"
        )
    modes = tuple(x.strip() for x in cache.split(",") if x.strip()) if cache else CACHE_MODES
    unknown = [m for m in modes if m not in CACHE_MODES]
    if unknown or not modes:
        raise UserError(f"cache must be a list of {', '.join(CACHE_MODES)}, got {cache!r}")
    sources = tuple(x.strip() for x in source.split(",") if x.strip()) if source else source_default
    if not sources or [x for x in sources if x not in SOURCES]:
        raise UserError(f"source must be a list of {', '.join(SOURCES)}, got {source!r}")
    compiles = tuple(x.strip() for x in compile_modes.split(",") if x.strip()) if compile_modes else ("off",)
    if not compiles or [x for x in compiles if x not in COMPILE_MODES]:
        raise UserError(f"compile must be a list of {', '.join(COMPILE_MODES)}, got {compile_modes!r}")
    return Space(
        lo,
        hi,
        whi,
        tuple(sizes),
        tuple(dict.fromkeys(modes)),
        tuple(dict.fromkeys(sources)),
        tuple(dict.fromkeys(compiles)),
    )


def resize_can_matter(mean_long_side: float, largest_imgsz: int, ratio: float = 2.0) -> bool:
    """Pre-resizing saves decode and resize work only where the files are much larger than what trains:
    at least `ratio` times the largest image size (1280x720 frames at 640 px, say)."""
    return mean_long_side >= ratio * largest_imgsz


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
