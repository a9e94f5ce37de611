"""Read throughput of none / disk / ram image access, and the one-time cost of each cache.

Uses the dataset's own image loading (Ultralytics' BaseDataset.load_image: decode or np.load, then resize the
long side to imgsz) on a sample staged apart from the user's files, one image at a time (one loader worker's
view). `none` and `disk` are read cold (pages evicted first) and warm (just read), because the page cache can
make decoding from files look faster than a real cold disk allows. `resized` reads the same sample pre-resized to
imgsz (what `autotune resize` writes): decoded at its final size, never resized again; its one-time cost is the
resize pass, like a cache build.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from autotune.measure import pagecache
from autotune.measure.dataset import choose_subset, count_objects, load_dataset
from autotune.measure.staging import stage
from autotune.measure.stats import median
from autotune.measure.ultralytics_glue import cache_fits
from autotune.records.config import ProbeOptions, TrainConfig, Workload

SAMPLE = 48  # images read per mode: enough for a stable median, little enough to stay quick


@dataclass(frozen=True)
class ModeRead:
    mode: str  # none | disk | ram | resized
    state: str  # cold | warm | memory
    per_image_s: float  # median seconds to get one image ready (decoded and resized)
    images_per_s: float  # 1 / mean per-image time, one worker


@dataclass(frozen=True)
class CacheBuild:
    mode: str  # disk | ram | resized
    sample_images: int
    sample_s: float
    sample_bytes: int
    full_images: int  # train + val
    full_s: float  # one-time cost for the whole dataset (extrapolated; Ultralytics builds with a thread pool)
    full_bytes: int
    available_bytes: int  # RAM available (ram) or free disk beside the images (disk)
    fits: bool  # Ultralytics' own rule: 2x the bytes for RAM, 1.1x for disk


@dataclass(frozen=True)
class CacheBench:
    imgsz: int
    sample_images: int
    reads: tuple[ModeRead, ...]
    builds: tuple[CacheBuild, ...]
    dataset_file_bytes: int  # the training images as stored
    ram_available_bytes: int
    disk_free_bytes: int

    def read(self, mode: str, state: str) -> ModeRead | None:
        return next((r for r in self.reads if r.mode == mode and r.state == state), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CacheBench:
        return cls(
            imgsz=d["imgsz"],
            sample_images=d["sample_images"],
            reads=tuple(ModeRead(**r) for r in d["reads"]),
            builds=tuple(CacheBuild(**b) for b in d["builds"]),
            dataset_file_bytes=d["dataset_file_bytes"],
            ram_available_bytes=d["ram_available_bytes"],
            disk_free_bytes=d["disk_free_bytes"],
        )


def break_even_epochs(build_s: float, saved_s_per_epoch: float) -> float | None:
    """Epochs after which a one-time cache build has paid for itself; None when it never does."""
    if saved_s_per_epoch <= 0:
        return None
    return build_s / saved_s_per_epoch


def _time_reads(ds: Any, n: int) -> list[float]:
    times = []
    for i in range(n):
        if ds.cache != "ram":  # forget any decoded copy, so the next call really reads
            ds.ims[i], ds.im_hw0[i], ds.im_hw[i] = None, None, None
        t0 = time.perf_counter()
        ds.load_image(i)
        times.append(time.perf_counter() - t0)
    return times


def _read(mode: str, state: str, times: list[float]) -> ModeRead:
    return ModeRead(mode, state, median(times), len(times) / sum(times))


def measure_cache(config: TrainConfig, workload: Workload, options: ProbeOptions, scratch: Path) -> CacheBench:
    """Run in a subprocess: stage a sample, then time each access mode with Ultralytics' dataset code."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    from autotune.measure.ultralytics_glue import patch_downloads

    patch_downloads()

    info = load_dataset(workload.data)
    counts = count_objects(info.train)
    idx = choose_subset(counts, min(SAMPLE, len(info.train)), options.seed)
    staged = stage(info, idx, choose_subset(count_objects(info.val), 1, options.seed), scratch / "data", counts)
    data = check_det_dataset(staged.data_yaml)
    cfg = get_cfg(overrides={"imgsz": config.imgsz, "cache": False, "data": staged.data_yaml})
    # val mode: no augmentation and no mosaic buffer, so every load_image call really loads
    ds = build_yolo_dataset(cfg, data["train"], 1, data, mode="val", stride=32)
    n = len(ds.im_files)
    files = list(ds.im_files)
    full = len(info.train) + len(info.val)
    reads: list[ModeRead] = []
    builds: list[CacheBuild] = []

    pagecache.drop(files)
    reads.append(_read("none", "cold", _time_reads(ds, n)))
    reads.append(_read("none", "warm", _time_reads(ds, n)))

    disk_free = shutil.disk_usage(Path(info.train[0]).parent).free
    resized_build, resized = _resize_sample(files, scratch / "resized", config.imgsz, full, disk_free)
    ds.im_files = resized  # the same dataset object reading the pre-resized files (no .npy exists yet)
    pagecache.drop(resized)
    resized_reads = [_read("resized", state, _time_reads(ds, n)) for state in ("cold", "warm")]
    ds.im_files = files
    ds.cache = "disk"
    t0 = time.perf_counter()
    ds.cache_images()  # writes full-resolution .npy files beside the staged links
    build_s = time.perf_counter() - t0
    npy_bytes = sum(f.stat().st_size for f in ds.npy_files if f.exists())
    builds.append(_build("disk", n, build_s, npy_bytes, full, disk_free))
    pagecache.drop(str(f) for f in ds.npy_files)
    reads.append(_read("disk", "cold", _time_reads(ds, n)))
    reads.append(_read("disk", "warm", _time_reads(ds, n)))
    for f in ds.npy_files:
        f.unlink(missing_ok=True)

    ram_avail = psutil.virtual_memory().available
    ds.cache = "ram"
    ds.ims, ds.im_hw0, ds.im_hw = [None] * n, [None] * n, [None] * n
    t0 = time.perf_counter()
    ds.cache_images()  # decodes and resizes every image into one shared buffer
    build_s = time.perf_counter() - t0
    ram_bytes = sum(h * w * ds.channels for h, w in ds.im_hw)
    builds.append(_build("ram", n, build_s, ram_bytes, full, ram_avail))
    reads.append(_read("ram", "memory", _time_reads(ds, n)))
    reads += resized_reads  # measured before the disk cache existed, shown last
    builds.append(resized_build)
    return CacheBench(
        imgsz=config.imgsz,
        sample_images=n,
        reads=tuple(reads),
        builds=tuple(builds),
        dataset_file_bytes=sum(os.path.getsize(p) for p in info.train),
        ram_available_bytes=ram_avail,
        disk_free_bytes=disk_free,
    )


def _resize_sample(
    files: list[str], folder: Path, imgsz: int, full: int, disk_free: int
) -> tuple[CacheBuild, list[str]]:
    """Pre-resize the sample with autotune resize's own code, one process; the full pass runs on every core."""
    from autotune.measure.images import Job, write_one
    from autotune.measure.machine import usable_cores

    folder.mkdir(parents=True, exist_ok=True)
    out = [str(folder / f"{k:07d}{Path(f).suffix}") for k, f in enumerate(files)]
    t0 = time.perf_counter()
    for src, dst in zip(files, out, strict=True):
        write_one(Job(src, dst, None, None, imgsz, 95))
    s = time.perf_counter() - t0
    n, b = len(files), sum(os.path.getsize(f) for f in out)
    full_b = int(b / n * full)
    # a resized copy is files on disk: Ultralytics' disk rule decides whether it fits
    build = CacheBuild(
        "resized",
        n,
        s,
        b,
        full,
        s / n * full / usable_cores(),
        full_b,
        disk_free,
        cache_fits("disk", full_b, disk_free),
    )
    return build, out


def _build(mode: str, n: int, s: float, b: int, full: int, available: int) -> CacheBuild:
    full_b = int(b / n * full)
    return CacheBuild(mode, n, s, b, full, s / n * full, full_b, available, cache_fits(mode, full_b, available))


def run_in_subprocess(request: dict[str, Any], heartbeat: Any) -> dict[str, Any]:
    from autotune.measure.probe import parse_request

    heartbeat({"phase": "cache bench", "eta_s": 120})
    return measure_cache(*parse_request(request)).to_dict()


def cache_bench(config: TrainConfig, workload: Workload, options: ProbeOptions) -> CacheBench | str:
    """The cache bench in its own subprocess: a CacheBench, or the reason it failed."""
    from autotune.measure import isolate
    from autotune.measure.probe import request_for, scratch_root

    with isolate.scratch_dir(scratch_root(options), "cachebench-") as work:
        request = request_for(config, workload, options, work)
        policy = isolate.TimeoutPolicy(startup_s=300)
        out = isolate.run_isolated("autotune.measure.cachebench:run_in_subprocess", request, work, policy)
    if out.status != "ok" or out.result is None:
        return f"{out.status}: {out.reason}"
    return CacheBench.from_dict(out.result)
