"""Resolving a search from what the user typed: space, baseline, limits, names; and handing the winner over.

Everything here runs before the first probe (so bad input is one line and nothing is stored) or after the
last one (the profile file); the loop itself is runner.py, the study's storage store.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.measure.dataset import load_dataset
from autotune.measure.images import image_sizes
from autotune.measure.machine import check_device, default_device, default_workers
from autotune.measure.ultralytics_glue import resolve_model
from autotune.records.config import (
    MAX_EPOCHS,
    MAX_ITERS,
    SOURCES,
    ProbeOptions,
    TrainConfig,
    Workload,
    check_memory_limit,
    whole,
)
from autotune.records.machine import Machine
from autotune.records.search import RANK_EPOCH, RANK_ON, DatasetSize, Space
from autotune.search import profiles
from autotune.search.names import check_study_name
from autotune.search.settings import SearchOutcome, SearchSettings, default_study_name
from autotune.search.space import build_space, cache_violation, resize_can_matter
from autotune.search.store import default_url
from autotune.units import parse_assignments, parse_duration, parse_memory_limit

MAX_BUDGET_S = 7 * 86400  # a week: past that it is a typo, not a search


@dataclass(frozen=True)
class Plan:
    """Everything a search needs, resolved from the command line before any probe runs."""

    settings: SearchSettings
    space: Space
    workload: Workload
    machine: Machine
    dataset: DatasetSize
    n_train: int
    notes: tuple[str, ...]
    n_val: int = 0


def dataset_size(train: tuple[str, ...], val: tuple[str, ...], sample: int = 32) -> DatasetSize:
    """Image count and mean size from a sample of image headers (no decoding)."""
    step = max(1, len(train) // sample)
    sizes = image_sizes(train[::step][:sample])
    n = len(train) + len(val)
    if not sizes:
        return DatasetSize(n, 640 * 640, 1.0)
    return DatasetSize(n, sum(w * h for w, h in sizes) / len(sizes), sum(min(s) / max(s) for s in sizes) / len(sizes))


@dataclass(frozen=True)
class SearchRequest:
    """`autotune search` as the user typed it; make_plan checks every value before anything runs."""

    data: str | None = None  # a data.yaml; None: the embedded default workload
    model: str = "yolo11n.yaml"
    budget: str = "20min"
    device: str | None = None  # None: GPU 0 if any
    batch: str | None = None  # lists or ranges, e.g. "8-64" or "8,16,32"
    workers: str | None = None
    imgsz: str | None = None
    cache: str | None = None
    source: str | None = None
    epochs: int = 100
    vram_limit: str | None = None
    baseline: str | None = None  # e.g. "batch=16,workers=8,imgsz=640,cache=none"
    target_epoch: str | None = None  # e.g. "30min"
    tries: tuple[str, ...] = ()
    storage: str | None = None
    study: str | None = None
    seed: int = 0
    fresh: bool = False
    iters: int | None = None
    rank_on: str = RANK_EPOCH
    compile: str | None = None  # torch.compile modes to search, e.g. "default,off"; None: off only


def make_plan(req: SearchRequest, machine: Machine, resolve_data: Callable[[str | None], str]) -> Plan:
    """Resolve the space, baseline, limits and names; every bad value is a UserError here, the cheap checks first
    (`resolve_data` may generate the embedded workload: it runs once the typed values are known to be good)."""
    budget_s = parse_duration(req.budget)
    target_s = parse_duration(req.target_epoch) if req.target_epoch else None
    whole("epochs", req.epochs, 1, MAX_EPOCHS)
    if req.iters is not None:
        whole("iters", req.iters, 1, MAX_ITERS)
    if req.rank_on not in RANK_ON:
        raise UserError(f"--rank-on must be one of {', '.join(RANK_ON)}, got {req.rank_on!r}")
    if budget_s > MAX_BUDGET_S:
        raise UserError(f"budget {req.budget!r} is more than {MAX_BUDGET_S // 86400} days: give at most 7d")
    device = req.device if req.device is not None else default_device()
    if device != "cpu" and not device.isdigit():
        raise UserError(f"device must be 'cpu' or a CUDA index such as '0', got {device!r}")
    check_device(device)
    if req.study is not None:
        check_study_name(req.study)
    model = resolve_model(req.model)
    workload = Workload(data=resolve_data(req.data), model=model, epochs=req.epochs)
    info = load_dataset(workload.data, check_labels=True)  # label files read once, here, before any probe
    cpu_only = device == "cpu"
    notes: list[str] = []
    limit_total = machine.gpus[int(device)].memory_bytes if not cpu_only and machine.gpus else machine.ram_bytes
    limit = parse_memory_limit(req.vram_limit, limit_total) if req.vram_limit else None
    max_batch = 32 if cpu_only else 256
    b = TrainConfig(workers=default_workers(), device=device)  # Ultralytics' defaults, workers capped as it caps them
    size = dataset_size(info.train, info.val)
    space = build_space(
        req.batch,
        req.workers,
        req.imgsz,
        req.cache,
        cpu_only,
        machine.usable_cores,
        b.imgsz,
        max_batch,
        req.source,
        compile_modes=req.compile,
    )
    if req.source is None and resize_can_matter(size.mean_long_side, max(space.imgsz)):
        space = replace(space, source=SOURCES)
        notes.append(
            f"the images' long side (~{size.mean_long_side:.0f} px) is at least twice the largest imgsz: a copy "
            "pre-resized to imgsz (autotune resize) is searched too (--source original to leave it out)"
        )
    if cpu_only:
        b = b.with_(imgsz=max(space.imgsz))
        notes.append(
            f"CPU only: small image sizes ({', '.join(map(str, space.imgsz))}) and short probes; the baseline is "
            f"Ultralytics' defaults at imgsz {b.imgsz} instead of 640 (--baseline imgsz=640 measures that)"
        )
    if req.baseline:
        b = _config_from(req.baseline, b, "--baseline")
    seeds = tuple(_config_from(text, b, "--try") for text in req.tries)
    for t in seeds:
        if not space.contains(t):
            raise UserError(f"--try {t.label()} is outside the search space ({space.describe()})")
    # on a GPU, each probe samples utilisation (~1% of its CPU time): the report says how busy the GPU was
    options = ProbeOptions(
        iters=req.iters or probe_iters(budget_s, cpu_only),
        warmup_max=15 if cpu_only else 30,
        utilisation=not cpu_only,
    )
    n_train = len(info.train)
    name = req.study or default_study_name(workload, machine, space, f"{info.yaml_path}:{n_train}:{len(info.val)}")
    if req.fresh:
        name = check_study_name(f"{name}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    settings = SearchSettings(
        budget_s=budget_s,
        storage=req.storage or default_url(),
        study=name,
        baseline=b,
        probe_options=options,
        memory_limit_bytes=limit,
        target_epoch_s=target_s,
        seed=req.seed,
        memory_limit_fraction=limit / limit_total if limit else None,
        seeds=seeds,
        rank_on=req.rank_on,
    )
    return Plan(settings, space, workload, machine, size, n_train, tuple(notes), n_val=len(info.val))


def _config_from(text: str, base: TrainConfig, flag: str) -> TrainConfig:
    """`base` with the batch/workers/imgsz/cache assignments in `text` (e.g. "batch=32,cache=ram") applied."""
    fields_ = parse_assignments(text)
    unknown = set(fields_) - {"batch", "workers", "imgsz", "cache", "source", "compile"}
    if unknown:
        raise UserError(
            f"{flag} takes batch, workers, imgsz, cache, source and compile, not {', '.join(sorted(unknown))}"
        )
    try:
        return base.with_(**{k: (v if k in ("cache", "source", "compile") else int(v)) for k, v in fields_.items()})
    except ValueError:
        raise UserError(f"cannot read {flag} {text!r}: whole numbers for batch, workers, imgsz") from None


def probe_iters(budget_s: float, cpu_only: bool) -> int:
    """Measured iterations per probe, fitted to the budget: short budgets buy more trials with shorter windows
    (a CPU iteration takes a second at most sizes here, a GPU one a tenth of that)."""
    if cpu_only:
        return 6 if budget_s < 300 else 10
    return 12 if budget_s < 600 else 20


def check_space_not_empty(plan: Plan, ram_available: int, disk_free: int) -> None:
    """Refuse a space where nothing can run: every cache mode impossible, or the limit below any config."""
    sp, ds = plan.space, plan.dataset
    possible = [
        m for m in sp.cache if any(cache_violation(ds, m, s, ram_available, disk_free) is None for s in sp.imgsz)
    ]
    if not possible:
        reasons = "; ".join(cache_violation(ds, m, min(sp.imgsz), ram_available, disk_free) or "" for m in sp.cache)
        raise UserError(f"nothing in the search space can run here: {reasons}")
    if plan.settings.memory_limit_bytes is not None:
        check_memory_limit(plan.settings.memory_limit_bytes)


def with_autobatch_seed(plan: Plan, device: str) -> tuple[Plan, str]:
    """On a GPU, enqueue Ultralytics' AutoBatch batch size (at the largest searched imgsz) as a seed."""
    from autotune.search.autobatch import autobatch

    size = max(plan.space.imgsz)
    ab = autobatch(plan.workload, size, device, plan.settings.memory_limit_fraction)
    asked = {"imgsz": size, "fraction": plan.settings.memory_limit_fraction}
    if not isinstance(ab, int):
        return replace(plan, settings=replace(plan.settings, autobatch={**asked, "error": ab})), (
            f"AutoBatch gave no seed: {ab}"
        )
    seed = plan.settings.baseline.with_(batch=ab, imgsz=size)
    settings = replace(plan.settings, seeds=(*plan.settings.seeds, seed), autobatch={**asked, "batch": ab})
    return replace(plan, settings=settings), f"AutoBatch suggests batch {ab} at imgsz {size}: enqueued as a seed"


def write_winner_profile(plan: Plan, outcome: SearchOutcome, folder: Path = Path("profiles")) -> Path | None:
    """profiles/<study>.yaml for the winner: exactly the settings that were measured, and what was measured."""
    w = outcome.winner
    if w is None:
        return None
    keys = ("batch", "workers", "imgsz", "cache", "source", "compile")
    config = plan.settings.baseline.with_(**{k: w.config[k] for k in keys if k in w.config})
    workload = plan.workload
    meta: dict[str, Any] = {
        "study": outcome.study,
        "storage": outcome.storage,
        "trial": w.number,
        "images_per_s": w.images_per_s,
        "epoch_s": w.epoch_s,
        "n_train": plan.n_train,
        "machine_summary": plan.machine.summary(),
        "machine": plan.machine.to_dict(),
        "pick": outcome.pick_reason,
    }
    if config.source == "resized":  # it trains from the pre-resized copy: point there, and say how to make it
        from autotune.data.resize import plan_resize

        copy = Path(plan_resize(workload.data, config.imgsz).out) / "data.yaml"
        meta["resize"] = {
            "from": workload.data,
            "imgsz": config.imgsz,
            "data": str(copy),
            "command": f"autotune resize --imgsz {config.imgsz} --data {workload.data}",
        }
        workload = replace(workload, data=str(copy))
    return profiles.write(folder / f"{outcome.study}.yaml", config, workload, meta)
