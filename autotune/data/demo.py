"""The embedded default workload: a seeded, synthetic PPE (person / helmet / vest) detection dataset.

The point of this dataset is to benchmark training *speed*, so each frame must cost what a real photo
costs: a textured, photo-like 1280x720 JPEG of a few hundred KB that takes milliseconds to decode, with a
realistic, long-tailed number of boxes per image. Scenes show a construction site (sky, skyline with
buildings, scaffolding and cranes, gravel ground, containers, cones, barriers) with workers of every size,
some wearing helmets and hi-vis vests (drawn by demo_draw.py). This module writes the files.

Frame ``i`` depends only on ``np.random.default_rng([seed, i])``, so the files are byte-identical across
runs, machines with the same library versions, and process counts.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import yaml

from autotune.data.demo_draw import CLASSES, Box, DemoSpec, render_frame, split_sizes
from autotune.data.filewrite import spawn_can_start, worker_init
from autotune.errors import UserError
from autotune.files import atomic_write, cache_root, check_out_folder

GENERATOR = "ppe-v1"  # bump when the renderer changes, so cached datasets are not silently mixed
MARKER = ".autotune-demo.json"
_PREFIX = "ppe_"


@dataclass(frozen=True)
class DemoDataset:
    """Where the dataset is and what it cost to produce."""

    root: Path
    data_yaml: Path
    n_train: int
    n_val: int
    bytes: int  # total bytes of image files
    seconds: float  # time spent generating in this call (0 if reused)
    reused: bool  # True when a complete dataset with the same spec was already there


# --------------------------------------------------------------------------------------------------
# Spec, paths
# --------------------------------------------------------------------------------------------------


def default_demo_dir(spec: DemoSpec) -> Path:
    """Default dataset folder for ``spec`` under the cache root.

    Non-default quality / val_fraction get a suffix so that two specs never share a folder
    (which write_demo_dataset would refuse).
    """
    name = f"{GENERATOR}-{spec.images}-{spec.width}x{spec.height}-s{spec.seed}"
    if spec.quality != DemoSpec.quality:
        name += f"-q{spec.quality}"
    if spec.val_fraction != DemoSpec.val_fraction:
        name += f"-v{spec.val_fraction:g}"
    return cache_root() / "demo" / name


def _split_of(index: int, n_train: int) -> str:
    return "train" if index < n_train else "val"


def _paths(root: Path, index: int, n_train: int) -> tuple[Path, Path]:
    """(image path, label path) of frame ``index``; files keep their global index in both splits."""
    split = _split_of(index, n_train)
    stem = f"{_PREFIX}{index:06d}"
    return root / "images" / split / f"{stem}.jpg", root / "labels" / split / f"{stem}.txt"


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def _label_text(labels: Iterable[Box]) -> str:
    return "".join(f"{c} {x:.6f} {y:.6f} {bw:.6f} {bh:.6f}\n" for c, x, y, bw, bh in labels)


def _generate_one(job: tuple[DemoSpec, str, int, int]) -> int:
    """Render, encode and write frame ``index`` (image + label); returns the JPEG size in bytes."""
    spec, root, index, n_train = job
    img, labels = render_frame(spec, index)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, spec.quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode demo frame {index} as JPEG")
    image_path, label_path = _paths(Path(root), index, n_train)
    atomic_write(label_path, _label_text(labels).encode())
    atomic_write(image_path, buf.tobytes())  # image last: a present image means its label is there too
    return len(buf)


def _read_marker(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"Demo dataset marker {path} is unreadable ({exc}); delete that folder and rerun.") from exc
    if not isinstance(data, dict):
        raise UserError(f"Demo dataset marker {path} is malformed; delete that folder and rerun.")
    return data


def _data_yaml_text(root: Path) -> str:
    return yaml.safe_dump(
        {"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(CLASSES))},
        sort_keys=False,
    )


BYTES_PER_PIXEL = 0.35  # JPEG at quality 90 of these textured frames: 1280x720 is ~0.3 MB (291 MiB per 1000 here)
DISK_MARGIN = 1.1


def check_room(root: Path, frames: int, spec: DemoSpec) -> None:
    """Refuse, before writing anything, a dataset the disk under `root` cannot hold (an estimate, 10% margin)."""
    need = int(frames * spec.width * spec.height * BYTES_PER_PIXEL * DISK_MARGIN)
    where = next(p for p in (root, *root.parents) if p.exists())
    free = shutil.disk_usage(where).free
    if need > free:
        gib = 2**30
        raise UserError(
            f"Demo dataset of {frames} {spec.width}x{spec.height} frames needs ~{need / gib:.1f} GiB; "
            f"{free / gib:.1f} GiB free under {where}: fewer --images, a smaller --size or another --out"
        )


def _claimable(root: Path, marker_path: Path, wanted: dict[str, Any]) -> bool:
    """Whether the folder already holds this spec complete; a UserError where it holds anything else."""
    check_out_folder(root)
    if marker_path.is_file():
        marker = _read_marker(marker_path)
        if {"generator": marker.get("generator"), "spec": marker.get("spec")} != wanted:
            raise UserError(
                f"{root} already holds a demo dataset made with a different spec ({marker.get('spec')}); "
                "pick another folder or delete it."
            )
        return bool(marker.get("complete"))
    if root.exists() and any(root.iterdir()):
        raise UserError(f"{root} is not empty and is not an autotune demo dataset; refusing to write into it.")
    return False


def _render(
    jobs: list[tuple[DemoSpec, str, int, int]], processes: int | None, progress: Callable[[int, int], None] | None
) -> None:
    """Render and write the frames, in parallel where the caller's script allows spawned workers."""
    workers = min(processes or os.cpu_count() or 1, len(jobs))
    if not spawn_can_start():
        workers = 1
    done = 0
    if workers <= 1:
        for job in jobs:
            _generate_one(job)
            done += 1
            if progress is not None:
                progress(done, len(jobs))
        return
    chunk = max(1, min(8, len(jobs) // (workers * 4)))  # small chunks: smooth progress, balanced load
    # Spawned, not forked, workers: a forked child inherits the parent's OpenCV thread pool half-alive
    # and hangs in it. ProcessPoolExecutor (not Pool) so that workers dying at start-up, e.g. because
    # the calling script lacks an `if __name__ == "__main__":` guard, fail fast instead of respawning.
    ctx = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=worker_init) as pool:
            for _ in pool.map(_generate_one, jobs, chunksize=chunk):
                done += 1
                if progress is not None:
                    progress(done, len(jobs))
    except BrokenProcessPool as exc:
        raise UserError(
            "Demo dataset worker processes died; if a script calls write_demo_dataset, put the call "
            "under `if __name__ == '__main__':`, or pass processes=1."
        ) from exc


def write_demo_dataset(
    spec: DemoSpec,
    out: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    processes: int | None = None,
) -> DemoDataset:
    """Generate (or reuse, or finish) the demo dataset for ``spec`` in ``out`` (default: the cache).

    A complete dataset with the same spec is reused as is; an interrupted one is completed by rendering only
    the missing frames. Refuses (UserError) a folder holding another spec, or a non-empty folder that is not
    a demo dataset. ``progress(done, total)`` is called in this process as frames finish, where ``total``
    counts the frames rendered by this call. ``processes`` defaults to the CPU count.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # We are a spawned worker re-running an unguarded caller script: generating here would race the
        # parent. Failing makes the parent's pool report BrokenProcessPool, turned into a clear UserError.
        raise RuntimeError("write_demo_dataset called while a worker process imports the main script")
    n_train, n_val = split_sizes(spec)
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 1):
        raise UserError(f"Demo dataset processes must be a positive integer, got {processes!r}.")
    root = (Path(out) if out is not None else default_demo_dir(spec)).expanduser().resolve()
    marker_path = root / MARKER
    data_yaml = root / "data.yaml"
    wanted = {"generator": GENERATOR, "spec": asdict(spec)}

    complete = _claimable(root, marker_path, wanted)
    paths = [_paths(root, i, n_train) for i in range(spec.images)]
    missing = [i for i, (im, lb) in enumerate(paths) if not (im.is_file() and lb.is_file())]
    check_room(root, len(missing), spec)
    yaml_text = _data_yaml_text(root)
    if complete and not missing:
        if not data_yaml.is_file() or data_yaml.read_text() != yaml_text:
            atomic_write(data_yaml, yaml_text.encode())  # e.g. the folder was moved: fix the absolute path
        return DemoDataset(root, data_yaml, n_train, n_val, sum(p[0].stat().st_size for p in paths), 0.0, True)

    start = time.perf_counter()
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        folder = root / sub
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".*.tmp"):  # leftovers of an interrupted run
            stale.unlink(missing_ok=True)
    # Claim the folder first (complete=False) so an interrupted run can be resumed, not refused as foreign.
    atomic_write(marker_path, json.dumps({**wanted, "complete": False}, indent=2).encode())

    _render([(spec, str(root), i, n_train) for i in missing], processes, progress)
    atomic_write(data_yaml, yaml_text.encode())
    atomic_write(marker_path, json.dumps({**wanted, "complete": True}, indent=2).encode())  # written last
    total_bytes = sum(p[0].stat().st_size for p in paths)
    return DemoDataset(root, data_yaml, n_train, n_val, total_bytes, time.perf_counter() - start, False)
