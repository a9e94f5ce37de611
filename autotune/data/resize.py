"""A pre-resized copy of a dataset: every image's long side shrunk to imgsz once, instead of every epoch.

Ultralytics decodes each full-size image file and shrinks its long side to imgsz every time it loads it (every
epoch, every mosaic tile). A copy whose images are already at imgsz decodes fewer pixels and is not resized again:
the size rule here is Ultralytics' own (`BaseDataset.load_image`: ceil, capped at imgsz), so at the same imgsz its
ratio is exactly 1. The cost is a one-time pass over the dataset, like building a cache.

The copy mirrors the source tree: every image and label file keeps its path relative to the deepest folder that
holds them all, so Ultralytics' images/ -> labels/ rule still pairs them. Labels are copied byte for byte (YOLO
labels are normalised to the image size, so they stay true). Images already at or below imgsz are copied byte for
byte (never upscaled); JPEGs are re-encoded as JPEG at `quality`, PNGs as PNG; a format OpenCV cannot write is
copied at full size and named. Every file is written to a hidden temp name and renamed into place, so a killed run
leaves no truncated file that looks done, and a rerun writes only what is missing. The source is only read.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from autotune.data.filewrite import spawn_can_start, worker_init
from autotune.errors import UserError
from autotune.files import atomic_write, check_out_folder
from autotune.measure.dataset import (
    IMG_FORMATS,
    data_root,
    entry_path,
    images_in,
    label_path,
    list_images,
    load_dataset,
)
from autotune.measure.images import (
    AS_IS,
    CORRUPT,
    KEPT,
    RESIZED,
    Job,
    header_size,
    shrink_encoded,
    target_size,
    write_one,
)
from autotune.measure.machine import usable_cores
from autotune.records.config import MAX_IMGSZ, MIN_IMGSZ, STRIDE, ProbeOptions, TrainConfig, Workload, whole

MARKER = ".autotune-resize.json"  # in the copy: what it was made from and at which size
ESTIMATE_SAMPLE = 16  # images encoded before writing, to estimate the copy's size and the time per image
DISK_MARGIN = 1.1  # the estimate may be 10% short (images compress differently)...
DISK_SLACK = 64 * 2**20  # ...and the filesystem needs some room of its own (bytes)

# --------------------------------------------------------------------------------------------------
# The plan: what to write where, checked before anything is written
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResizePlan:
    source_yaml: str
    source_root: str  # deepest folder holding every image and label: mirrored under out
    out: str
    imgsz: int
    quality: int
    images: tuple[str, ...]  # every image of every split, once
    sizes: tuple[tuple[int, int] | None, ...]  # (width, height) from the header; None: unreadable
    yaml_text: str  # the copy's data.yaml
    lists: tuple[tuple[str, tuple[str, ...]], ...]  # image list files to write: (path in the copy, source images)
    notes: tuple[str, ...]

    def mirror(self, path: str) -> str:
        """Where a source file goes in the copy."""
        return os.path.join(self.out, os.path.relpath(path, self.source_root))

    def job(self, i: int) -> Job:
        src = self.images[i]
        lbl = label_path(src)
        has_label = os.path.isfile(lbl)
        return Job(
            src,
            self.mirror(src),
            lbl if has_label else None,
            self.mirror(lbl) if has_label else None,
            self.imgsz,
            self.quality,
        )

    def done(self, i: int) -> bool:
        """Written by an earlier run: the image is under its final name (so whole), and its label if it has one."""
        j = self.job(i)
        return os.path.isfile(j.dst) and (j.label_dst is None or os.path.isfile(j.label_dst))


def default_out(source_root: str, imgsz: int) -> Path:
    """Beside the dataset: <dataset folder>-<imgsz>px, e.g. ppe-416px next to ppe."""
    root = Path(source_root)
    if root.parent == root:
        raise UserError(f"the dataset's files share no folder below {root}; give --out")
    return root.with_name(f"{root.name}-{imgsz}px")


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_out(out: Path, source_root: Path, source_yaml: str, imgsz: int, quality: int) -> None:
    real_out, real_src = Path(os.path.realpath(out)), Path(os.path.realpath(source_root))
    if _is_within(real_out, real_src):
        what = "is" if real_out == real_src else "is inside"
        raise UserError(f"--out {out} {what} the dataset ({source_root}); write the copy somewhere else")
    if _is_within(real_src, real_out):
        raise UserError(f"--out {out} contains the dataset ({source_root}); write the copy somewhere else")
    check_out_folder(out)
    marker = out / MARKER
    if marker.is_file():
        try:
            made = json.loads(marker.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{marker} is unreadable ({e}); delete {out} and rerun") from e
        wanted = {"source": source_yaml, "imgsz": imgsz, "quality": quality}
        if {k: made.get(k) for k in wanted} != wanted:
            raise UserError(
                f"{out} holds a copy of {made.get('source')} at imgsz {made.get('imgsz')}, quality "
                f"{made.get('quality')}; pick another --out or delete it"
            )
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty and is not a resized copy; refusing to write into it")


def _split_entry(
    item: str, root: Path, key: str, src_root: Path, out: Path, lists: list[tuple[str, tuple[str, ...]]]
) -> str | None:
    """The copy's entry for one source entry (a folder or a list file); list files are queued in `lists`."""
    p = entry_path(item, root)
    if p.is_dir():
        if _is_within(p, src_root):
            return Path(os.path.relpath(p, src_root)).as_posix()
        # a folder above the mirrored root: every image under it is under the root too
        return "." if _is_within(src_root, p) else None
    images = sorted(str(Path(x).absolute()) for x in images_in(p) if x.rpartition(".")[-1].lower() in IMG_FORMATS)
    dst = out / os.path.relpath(p, src_root) if _is_within(p, src_root) else out / f"{key}-{p.name}"
    lists.append((str(dst), tuple(images)))
    return Path(os.path.relpath(dst, out)).as_posix()


def plan_resize(data_yaml: str | Path, imgsz: int, out: str | Path | None = None, quality: int = 95) -> ResizePlan:
    """Everything checked before a byte is written; any impossible request is a UserError."""
    whole("imgsz", imgsz, MIN_IMGSZ, MAX_IMGSZ, " pixels")  # below the largest stride nothing trains
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise UserError(f"quality must be between 1 and 100, got {quality!r}")
    info = load_dataset(data_yaml)
    path = Path(info.yaml_path)
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    root = data_root(data, path)
    notes = []
    test: list[str] = []
    if data.get("test"):
        try:
            test = list_images(data["test"], root, "test", path)
        except UserError as e:
            notes.append(f"test split left out of the copy: {e}")
    images = tuple(dict.fromkeys([*info.train, *info.val, *test]))
    src_root = Path(os.path.commonpath([p for im in images for p in (im, label_path(im))]))
    out_path = (Path(out).expanduser() if out is not None else default_out(str(src_root), imgsz)).absolute()
    _check_out(out_path, src_root, info.yaml_path, imgsz, quality)

    sizes = tuple(header_size(im) for im in images)
    readable = [s for s in sizes if s is not None]
    if not readable:
        raise UserError(f"{path}: none of its {len(images)} images can be read")
    largest = max(readable, key=max)
    if max(largest) <= imgsz:
        raise UserError(
            f"nothing to do: all {len(readable)} readable images are already at most {imgsz} px on their long side "
            f"(largest {largest[0]}x{largest[1]}); the copy would equal the original"
        )
    if imgsz % STRIDE:
        up = math.ceil(imgsz / STRIDE) * STRIDE
        notes.append(
            f"Ultralytics trains at multiples of {STRIDE}: --imgsz {imgsz} trains at {up} and would resize these "
            f"images up again; prefer {up}"
        )

    lists: list[tuple[str, tuple[str, ...]]] = []
    splits: dict[str, Any] = {}
    for key in ("train", "val", "test"):
        if key not in data or (key == "test" and not test):
            continue
        entries = data[key] if isinstance(data[key], list) else [data[key]]
        mapped = [e for e in (_split_entry(str(x), root, key, src_root, out_path, lists) for x in entries) if e]
        splits[key] = mapped if isinstance(data[key], list) else mapped[0]
    rest = {k: v for k, v in data.items() if k not in ("path", "train", "val", "test", "download")}
    text = yaml.safe_dump({"path": str(out_path), **splits, **rest}, sort_keys=False, allow_unicode=True)
    return ResizePlan(
        source_yaml=info.yaml_path,
        source_root=str(src_root),
        out=str(out_path),
        imgsz=imgsz,
        quality=quality,
        images=images,
        sizes=sizes,
        yaml_text=text,
        lists=tuple(lists),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------------
# The estimate: bytes and seconds, from a sample encoded in memory
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    pending: int  # images this run will write
    sample_images: int  # images encoded to estimate
    seconds_per_image: float  # one process: read, decode, shrink, encode (0 when nothing was sampled)
    out_bytes: int  # the files this run will write: images and labels


def estimate(plan: ResizePlan, pending: Sequence[int], sample: int = ESTIMATE_SAMPLE) -> Estimate:
    """Bytes this run writes and seconds per image: encode a spread-out sample of the images that shrink, scale
    their bytes per output pixel to the others; images copied as they are and labels count at their size."""
    shrink = [i for i in pending if plan.sizes[i] is not None and max(plan.sizes[i]) > plan.imgsz]
    picks = [shrink[k * len(shrink) // sample] for k in range(sample)] if len(shrink) > sample else shrink
    out_b, out_px, seconds, n = 0, 0, 0.0, 0
    for i in dict.fromkeys(picks):
        t0 = time.perf_counter()
        try:
            data = Path(plan.images[i]).read_bytes()
        except OSError:
            continue
        outcome, new = shrink_encoded(data, Path(plan.images[i]).suffix, plan.imgsz, plan.quality)
        seconds += time.perf_counter() - t0
        n += 1
        if outcome == RESIZED and new is not None:
            w, h = target_size(*plan.sizes[i], plan.imgsz)  # type: ignore[misc]
            out_b, out_px = out_b + len(new), out_px + w * h
    per_px = out_b / out_px if out_px else None
    total = 0
    for i in pending:
        size = plan.sizes[i]
        if size is not None and max(size) > plan.imgsz and per_px is not None:
            w, h = target_size(*size, plan.imgsz)
            total += int(per_px * w * h)
        else:  # copied as it is (or unreadable: counted as if copied, to stay on the safe side)
            total += os.path.getsize(plan.images[i])
        lbl = label_path(plan.images[i])
        total += os.path.getsize(lbl) if os.path.isfile(lbl) else 0
    return Estimate(len(pending), n, seconds / n if n else 0.0, total)


def disk_free(path: str | Path) -> int:
    """Free bytes on the filesystem that will hold `path` (its first existing ancestor)."""
    p = Path(path)
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def check_disk(needed: int, free: int, where: str) -> None:
    """Refuse when the copy would not fit with a margin (10% over the estimate, plus 64 MiB)."""
    if needed * DISK_MARGIN + DISK_SLACK > free:
        raise UserError(
            f"not enough disk space at {where}: the resized copy needs about {needed / 2**20:,.0f} MiB "
            f"(+10% and 64 MiB margin) but {free / 2**20:,.0f} MiB are free"
        )


def resize_cost_estimate(n_images: int, seconds_per_image: float, epochs: int, processes: int = 1) -> float:
    """The one-time resize, spread over the planned epochs: seconds per epoch it costs, like a cache build.
    Compare with the read time it saves per epoch (cachebench's break_even_epochs gives the crossing)."""
    if epochs < 1 or processes < 1:
        raise ValueError(f"epochs and processes must be >= 1, got {epochs}, {processes}")
    return n_images * seconds_per_image / processes / epochs


# --------------------------------------------------------------------------------------------------
# Writing the copy
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResizeResult:
    data_yaml: str
    out: str
    source_yaml: str
    imgsz: int
    quality: int
    images: int  # in the dataset, every split, each once
    resized: int  # written smaller by this run
    as_is: int  # at or below imgsz already: copied byte for byte by this run
    already: int  # complete from an earlier run: skipped
    kept: tuple[str, ...]  # larger than imgsz but in a format OpenCV cannot write: copied at full size
    corrupt: tuple[str, ...]  # unreadable: left out of the copy
    seconds: float  # this run, writing only (the plan and estimate are not included)
    processes: int
    source_bytes: int  # image files of the original
    copy_bytes: int  # image files of the copy
    estimated_bytes: int  # what the disk check assumed this run would write (images and labels)
    seconds_per_image: float  # from the estimate's sample, one process
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _remove_temps(out: Path) -> None:
    """Temp files of a killed run: never taken for done work (their names are not the final names)."""
    for tmp in out.rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def _run_jobs(jobs: list[Job], processes: int, progress: Callable[[int, int], None] | None) -> list[tuple[str, int]]:
    workers = min(processes, len(jobs))
    if not spawn_can_start():
        workers = 1
    results: list[tuple[str, int]] = []
    if workers <= 1:
        for job in jobs:
            results.append(write_one(job))
            if progress is not None:
                progress(len(results), len(jobs))
        return results
    chunk = max(1, min(16, len(jobs) // (workers * 8)))  # small chunks: smooth progress, balanced load
    # Spawned, not forked, workers, as in demo.py: a forked child can inherit OpenCV's thread pool half-alive.
    ctx = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=worker_init) as pool:
            for r in pool.map(write_one, jobs, chunksize=chunk):
                results.append(r)
                if progress is not None:
                    progress(len(results), len(jobs))
    except BrokenProcessPool as e:
        raise UserError("resize worker processes died; rerun with --processes 1 to see why") from e
    return results


def prepare(plan: ResizePlan) -> tuple[list[int], Estimate]:
    """Remove a killed run's temp files, find the images still to write, estimate them, and check the disk."""
    out = Path(plan.out)
    if out.is_dir():
        _remove_temps(out)
    pending = [i for i in range(len(plan.images)) if not plan.done(i)]
    est = estimate(plan, pending)
    check_disk(est.out_bytes, disk_free(out), str(out))
    return pending, est


def write_copy(
    plan: ResizePlan,
    pending: Sequence[int],
    est: Estimate,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ResizeResult:
    """Write the pending images (in parallel over `processes`, default the usable cores), then the list files and
    the data.yaml. `progress(done, total)` is called in this process as images finish."""
    if processes is not None and processes < 1:
        raise UserError(f"processes must be >= 1, got {processes}")
    processes = processes or usable_cores()
    out = Path(plan.out)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / MARKER
    made = {"source": plan.source_yaml, "imgsz": plan.imgsz, "quality": plan.quality}
    atomic_write(marker, json.dumps({**made, "complete": False}, indent=2).encode())  # claim the folder first

    start = time.perf_counter()
    jobs = [plan.job(i) for i in pending]
    results = _run_jobs(jobs, processes, progress)
    seconds = time.perf_counter() - start

    for dst, sources in plan.lists:  # only images that made it into the copy
        lines = [f"./{os.path.relpath(plan.mirror(s), Path(dst).parent)}" for s in sources]
        present = [ln for ln, s in zip(lines, sources, strict=True) if os.path.isfile(plan.mirror(s))]
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(dst), "".join(f"{ln}\n" for ln in present).encode())
    data_yaml = out / "data.yaml"
    atomic_write(data_yaml, plan.yaml_text.encode())
    atomic_write(marker, json.dumps({**made, "complete": True}, indent=2).encode())

    outcomes = [o for o, _ in results]
    return ResizeResult(
        data_yaml=str(data_yaml),
        out=plan.out,
        source_yaml=plan.source_yaml,
        imgsz=plan.imgsz,
        quality=plan.quality,
        images=len(plan.images),
        resized=outcomes.count(RESIZED),
        as_is=outcomes.count(AS_IS),
        already=len(plan.images) - len(pending),
        kept=tuple(j.src for j, (o, _) in zip(jobs, results, strict=True) if o == KEPT),
        corrupt=tuple(j.src for j, (o, _) in zip(jobs, results, strict=True) if o == CORRUPT),
        seconds=seconds,
        processes=min(processes, max(len(jobs), 1)),
        source_bytes=sum(os.path.getsize(im) for im in plan.images),
        copy_bytes=sum(os.path.getsize(d) for d in map(plan.mirror, plan.images) if os.path.isfile(d)),
        estimated_bytes=est.out_bytes,
        seconds_per_image=est.seconds_per_image,
        notes=plan.notes,
    )


def resize_dataset(
    data_yaml: str | Path,
    imgsz: int,
    out: str | Path | None = None,
    quality: int = 95,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ResizeResult:
    """Plan, check and write the resized copy in one call (what `autotune resize` does)."""
    plan = plan_resize(data_yaml, imgsz, out, quality)
    pending, est = prepare(plan)
    return write_copy(plan, pending, est, processes, progress)


@dataclass(frozen=True)
class ResizeCheck:
    config: TrainConfig | None  # for --measure: the loader-only comparison's config
    options: ProbeOptions


@dataclass(frozen=True)
class ResizeRequest:
    """`autotune resize` as typed; check() refuses every bad value before anything is read or written."""

    imgsz: int
    out: Path | None = None
    quality: int = 95
    processes: int | None = None
    measure: bool = False
    batch: int = 16
    workers: int | None = None
    iters: int = 20

    def check(self) -> ResizeCheck:
        from autotune.measure.machine import default_device, default_workers

        options = ProbeOptions(iters=self.iters)
        config = None
        if self.measure:
            workers = default_workers() if self.workers is None else self.workers
            config = TrainConfig(batch=self.batch, workers=workers, imgsz=self.imgsz, device=default_device())
        if self.processes is not None and self.processes < 1:
            raise UserError(f"processes must be >= 1, got {self.processes}")
        return ResizeCheck(config, options)


# --------------------------------------------------------------------------------------------------
# Measuring the lever
# --------------------------------------------------------------------------------------------------


def compare_loaders(
    original_yaml: str, resized_yaml: str, config: TrainConfig, model: str, options: ProbeOptions
) -> dict[str, Any]:
    """Loader-only throughput (Ultralytics' training dataloader, no model) of the original and of the copy, with
    the same config: {"original": LoaderResult, "resized": LoaderResult}. Each runs in its own subprocess."""
    from autotune.measure.loader import loader_only

    return {
        name: loader_only(config, Workload(data=data, model=model), options)
        for name, data in (("original", original_yaml), ("resized", resized_yaml))
    }
