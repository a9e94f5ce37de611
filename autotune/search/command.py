"""`autotune search` and `autotune report --measure` from start to end: plan, open the study, probe, keep the
winner. The CLI passes what to show progress with; nothing here prints."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from autotune.errors import UserError
from autotune.files import cache_root
from autotune.measure.dataset import load_dataset
from autotune.measure.machine import fingerprint
from autotune.measure.probe import probe
from autotune.records.config import ProbeOptions
from autotune.records.machine import Machine
from autotune.search import store
from autotune.search.plan import (
    Plan,
    SearchRequest,
    check_space_not_empty,
    dataset_size,
    make_plan,
    with_autobatch_seed,
    write_winner_profile,
)
from autotune.search.runner import ProbeFn, Search
from autotune.search.settings import SearchOutcome, SearchSettings

Event = Callable[[str, dict[str, Any]], None]


def probe_fn(config: Any, workload: Any, options: Any, on_progress: Any) -> Any:
    """The real probe, as the search calls it."""
    return probe(config, workload, options, on_progress=on_progress)


def lock_path() -> Path:
    """Probes on one host take this lock in turn: they would disturb each other's timings."""
    return cache_root() / "probe.lock"


@dataclass(frozen=True)
class Prepared:
    plan: Plan
    runner: Search  # its study opened and checked (machine, space): a worker that may not join never starts
    notes: tuple[str, ...]  # what the plan and AutoBatch said, for the terminal


def prepare(
    req: SearchRequest,
    resolve_data: Callable[[str | None], str],
    on_status: Callable[[str], None],
    probe_with: ProbeFn = probe_fn,
) -> Prepared:
    """Everything before the first probe: the plan, the storage, on a GPU AutoBatch's seed, and the study."""
    plan = make_plan(req, fingerprint(), resolve_data)
    ram, disk = psutil.virtual_memory().available, shutil.disk_usage(Path(plan.workload.data).parent).free
    check_space_not_empty(plan, ram, disk)
    storage = store.open_storage(plan.settings.storage)
    notes: list[str] = []
    device = plan.settings.baseline.device
    if device != "cpu":  # on a GPU, Ultralytics' AutoBatch answer is a seed inside the space
        on_status("asking Ultralytics AutoBatch for a seed batch size...")
        plan, said = with_autobatch_seed(plan, device)
        notes.append(said)
    notes += plan.notes
    notes.append(f"space: {plan.space.describe()}; study {plan.settings.study}")
    on_status("opening the study...")
    runner = Search(
        plan.settings,
        plan.space,
        plan.workload,
        plan.machine,
        plan.dataset,
        plan.n_train,
        probe_fn=probe_with,
        storage=storage,
        ram_available=ram,
        disk_free=disk,
        lock_path=lock_path(),
        n_val=plan.n_val,
    )
    return Prepared(plan, runner, tuple(notes))


def run(p: Prepared, on_event: Event) -> tuple[SearchOutcome, Path | None]:
    """The search itself, then the winner's profile file."""
    p.runner.on_event = on_event
    outcome = p.runner.run()
    return outcome, write_winner_profile(p.plan, outcome)


def remeasure(
    storage: Any,
    url: str,
    name: str,
    repeats: int,
    on_event: Event = lambda kind, data: None,
    probe_with: ProbeFn = probe_fn,
    machine: Machine | None = None,
) -> int:
    """`autotune report --measure`: the factor probes the study still lacks (and, with repeats > 1, repeats of
    the baseline and the winner), probed as the search probed, on the machine the study was measured on."""
    st = store.load(storage, name)
    meta = st.meta()
    baseline = st.reference()
    if baseline is None:
        raise UserError(f"study {name!r} was not made by `autotune search`: nothing to measure")
    info = load_dataset(meta.workload.data)
    settings = SearchSettings(
        budget_s=1e9,  # no budget: measure what is missing, however long it takes (Ctrl-C keeps what finished)
        storage=url,
        study=name,
        baseline=meta.baseline,
        probe_options=meta.probe_options or ProbeOptions(iters=10),
        memory_limit_bytes=meta.memory_limit_bytes,
        target_epoch_s=meta.target_epoch_s,
    )
    runner = Search(
        settings,
        meta.space,
        meta.workload,
        machine or fingerprint(),
        meta.dataset or dataset_size(info.train, info.val),
        len(info.train),
        probe_fn=probe_with,
        storage=storage,
        ram_available=psutil.virtual_memory().available,
        disk_free=shutil.disk_usage(Path(meta.workload.data).parent).free,
        lock_path=lock_path(),
        on_event=on_event,
    )
    return runner.measure_levers(baseline, repeats=repeats)
