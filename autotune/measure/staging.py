"""A probe's files: the subset it stages (links in its scratch folder), the page-cache state it reads them in, and
what Ultralytics made of them (images it dropped or rewrote). Runs inside the probe's subprocess."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from autotune.measure import pagecache
from autotune.measure.dataset import DatasetInfo, choose_subset, count_objects, load_dataset, stale_npy
from autotune.measure.images import RESIZED, image_sizes, shrink_encoded
from autotune.measure.labels import label_path
from autotune.measure.machine import available_ram_bytes
from autotune.measure.ultralytics_glue import expected_workers, val_batch_of, workers_note
from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.probe import CacheCost


@dataclass(frozen=True)
class StagedSubset:
    root: str
    data_yaml: str
    train: tuple[str, ...]  # staged paths (links), same order as sources
    val: tuple[str, ...]
    train_sources: tuple[str, ...]
    val_sources: tuple[str, ...]
    train_objects: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _link_split(split: str, sources: list[str], root: Path) -> list[str]:
    img_dir, lbl_dir = root / split / "images", root / split / "labels"
    img_dir.mkdir(parents=True)
    lbl_dir.mkdir(parents=True)
    staged = []
    for k, src in enumerate(sources):
        # a numbered name keeps images from different source folders apart and keeps the original extension
        name = f"{k:07d}_{Path(src).name}"
        dst = img_dir / name
        os.symlink(src, dst)
        lbl = label_path(src)
        if os.path.exists(lbl):
            os.symlink(lbl, lbl_dir / (dst.stem + ".txt"))
        staged.append(str(dst))
    return staged


def stage(info: DatasetInfo, train_idx: list[int], val_idx: list[int], root: Path, counts: list[int]) -> StagedSubset:
    """Link the chosen images and their labels into root/{train,val}/{images,labels} and write a data.yaml."""
    train_src = [info.train[i] for i in train_idx]
    val_src = [info.val[i] for i in val_idx]
    train = _link_split("train", train_src, root)
    val = _link_split("val", val_src, root)
    data_yaml = root / "data.yaml"
    data_yaml.write_text(
        yaml.safe_dump(
            {"path": str(root), "train": "train/images", "val": "val/images", "names": dict(enumerate(info.names))},
            sort_keys=False,
        )
    )
    return StagedSubset(
        root=str(root),
        data_yaml=str(data_yaml),
        train=tuple(train),
        val=tuple(val),
        train_sources=tuple(train_src),
        val_sources=tuple(val_src),
        train_objects=tuple(counts[i] for i in train_idx),
    )


@dataclass(frozen=True)
class Staging:
    """The staged subset and what staging found out."""

    info: DatasetInfo
    staged: StagedSubset
    workers: int  # the loader workers Ultralytics starts in the full run (its own cap): the probe must match
    source_cost: CacheCost | None  # source=resized: the one-time resize of the whole dataset
    warnings: tuple[str, ...]


# Ultralytics' training loaders keep prefetch_factor=4 batches per worker ready (ultralytics/data/build.py).
PREFETCH = 4
# A window holds at least this many images where its iterations allow, so that min_window_s can be reached on a
# fast GPU without revisiting images (1000 images/s x 2 s); it only decides how many images are staged.
WINDOW_IMAGES = 2048


def window_cap(options: ProbeOptions, batch: int, workers: int) -> int:
    """Most iterations a window may take: room for min_window_s at ~1000 images/s, plus a full prefetch queue to
    drain (timing.py), after which the window is kept and its rate corrected to what the loader produced."""
    return max(options.iters, -(-WINDOW_IMAGES // batch) if options.min_window_s > 0 else 0) + PREFETCH * workers


def subset_sizes(config: TrainConfig, options: ProbeOptions, n_train: int, n_val: int, workers: int) -> tuple[int, int]:
    """Images to stage for train and val.

    The window never revisits an image: neither the page cache nor the mosaic buffer may serve a repeat.
    Worst case it needs warmup_max + the window's cap in batches, plus one spare for the batch in flight. And more
    batches than loader workers: Ultralytics starts no more workers than batches, and the full run has its `workers`.
    """
    need_train = max(options.warmup_max + window_cap(options, config.batch, workers) + 1, workers + 1) * config.batch
    need_val = 2 * val_batch_of(config.batch, options.val_batch)  # two batches: a pass split into batch and rest
    return min(need_train, n_train), min(need_val, n_val)


def stage_subset(
    config: TrainConfig, workload: Workload, options: ProbeOptions, scratch: Path, heartbeat: Any = lambda b: None
) -> Staging:
    """Choose and link the subset (the most crowded images first), pre-resize it for source=resized."""
    info = load_dataset(workload.data)
    counts = count_objects(info.train)
    workers = expected_workers(config, len(info.train))
    n_train_sub, n_val_sub = subset_sizes(config, options, len(info.train), len(info.val), workers)
    train_idx = choose_subset(counts, n_train_sub, options.seed)
    val_idx = choose_subset(count_objects(info.val), n_val_sub, options.seed)
    staged = stage(info, train_idx, val_idx, scratch / "data", counts)
    source_cost = None
    if config.source == "resized":
        heartbeat({"phase": "resizing the staged subset"})
        source_cost = resize_staged(staged, config.imgsz, len(info.train) + len(info.val), Path(workload.data).parent)
    warnings = [w for w in (workers_note(config.workers, workers, len(info.train), config.batch),) if w]
    stale = stale_npy(info.train) + stale_npy(info.val)
    if stale:
        warnings.append(
            f"{len(stale)} .npy files beside your images (e.g. {stale[0]}): Ultralytics reads them in every cache "
            "mode, so your real runs use them; probes do not see them"
        )
    return Staging(info, staged, workers, source_cost, tuple(warnings))


def resize_staged(staged: StagedSubset, imgsz: int, full_images: int, beside: Path) -> CacheCost:
    """Replace the staged links by copies pre-resized to imgsz, as `autotune resize` writes them; the time and
    bytes per image, extrapolated to the whole dataset, are the one-time cost of making that copy."""
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


def scratch_room(s: Staging, config: TrainConfig, scratch: Path) -> str | None:
    """Why the probe's own files cannot fit where it stages them (its .npy cache, full-resolution uint8 images),
    or None. The full run's cache is judged apart, beside the user's images (probe_run.cache_cost)."""
    if config.cache != "disk":
        return None
    sizes = image_sizes(s.staged.train_sources[:16])
    mean_pixels = sum(w * h for w, h in sizes) / len(sizes) if sizes else 640 * 640
    need = int((len(s.staged.train) + len(s.staged.val)) * mean_pixels * 3 * 1.1)
    free = shutil.disk_usage(scratch).free
    if need <= free:
        return None
    gib = 2**30
    return (
        f"cache=disk: the probe's .npy files need ~{need / gib:.2f} GiB and its scratch folder {scratch} has "
        f"{free / gib:.2f} GiB free (set AUTOTUNE_CACHE to a folder on a larger disk)"
    )


@dataclass(frozen=True)
class PageCachePlan:
    """The page-cache state the probe reads its files in: the full run's steady state, unless told otherwise."""

    sources: tuple[str, ...]  # the user's files behind the staged links
    resident_before: float | None
    regime: str  # warm | cold | n/a: what the full run's steady state will be
    regime_reason: str
    mode: str  # what the probe does: warm | cold | asis
    action: str  # warmed | dropped | none


def page_cache_regime(files_bytes: int, cache: str, npy_bytes: int, available: int) -> tuple[str, str]:
    """Will the full run read its files warm (from RAM) or cold (from disk) once it is in steady state?"""
    if cache == "ram":
        return "n/a", "cache=ram decodes every image once and keeps it in memory"
    read_bytes, what = (npy_bytes, ".npy cache") if cache == "disk" else (files_bytes, "image files")
    # half of what is available: the page cache competes with the process, its workers and other users
    gib = 2**30
    if read_bytes < 0.5 * available:
        return "warm", f"the {what} ({read_bytes / gib:.2f} GiB) fit in available RAM ({available / gib:.1f} GiB)"
    return "cold", f"the {what} ({read_bytes / gib:.2f} GiB) exceed half the available RAM ({available / gib:.1f} GiB)"


def set_page_cache(s: Staging, config: TrainConfig, options: ProbeOptions) -> PageCachePlan:
    """Judge the full run's page-cache regime and put the staged files' pages in that state."""
    sources = (*s.staged.train_sources, *s.staged.val_sources)
    resident_before = pagecache.resident_fraction(sources)
    files_bytes = sum(os.path.getsize(p) for p in s.info.train)
    sizes = image_sizes(s.staged.train_sources[:16])
    mean_pixels = sum(w * h for w, h in sizes) / len(sizes) if sizes else 0.0
    npy_full_bytes = int(mean_pixels * 3 * len(s.info.train))  # .npy files hold full-resolution uint8 BGR
    regime, why = page_cache_regime(files_bytes, config.cache, npy_full_bytes, available_ram_bytes())
    mode = options.page_cache if options.page_cache != "auto" else regime
    action = "none"
    if mode == "warm":
        pagecache.warm(sources)
        action = "warmed"
    elif mode == "cold":
        pagecache.drop(sources)
        action = "dropped"
    return PageCachePlan(sources, resident_before, regime, why, mode, action)


def damaged_images(staged: StagedSubset, train_kept: list[str], val_kept: list[str]) -> tuple[list[str], list[str]]:
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


def damage_warnings(skipped: list[str], restored: list[str]) -> list[str]:
    out = []
    if skipped:
        out.append(f"skipped {len(skipped)} corrupt image(s) Ultralytics cannot read: {', '.join(skipped)}")
    if restored:
        out.append(
            f"{len(restored)} truncated JPEG(s) that Ultralytics would rewrite in place when your run scans them "
            f"(the probe only rewrote its own copy): {', '.join(restored)}"
        )
    return out


def subset_summary(staged: StagedSubset, revisits: bool) -> dict[str, Any]:
    objs = staged.train_objects
    return {
        "train_images": len(staged.train),
        "val_images": len(staged.val),
        "max_objects": max(objs) if objs else 0,
        "mean_objects": sum(objs) / len(objs) if objs else 0.0,
        "revisits": revisits,
    }
