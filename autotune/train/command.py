"""`autotune train` from start to end: where the measured settings come from, the phase probes the prediction needs,
the pre-resized copy when the winner trains from it, then the run. The CLI passes what to show progress with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.measure.dataset import load_dataset
from autotune.measure.machine import fingerprint
from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.probe import ProbeResult
from autotune.records.run import TrainRun
from autotune.search import names, store
from autotune.train import handover as ho
from autotune.train import run as tr
from autotune.train.predict import Rates

PhaseProbe = Callable[[TrainConfig, Workload, ProbeOptions, str], ProbeResult]


@dataclass(frozen=True)
class TrainRequest:
    """`autotune train` as the user typed it."""

    best: bool = False  # the winner of the latest study
    study: str | None = None
    storage: str | None = None
    profile: Path | None = None
    recipe: ho.Recipe = field(default_factory=ho.Recipe)
    resume: bool = False
    measure: bool = True  # probe the phases the study lacks before training


def source_for(req: TrainRequest) -> ho.Source:
    """Where the measured settings come from: a study's winner or a profile file (and its study, if stored)."""
    if req.study is not None:
        names.check_study_name(req.study)  # '' too: a typed name is a name
    if req.profile is not None and (req.best or req.study):
        raise UserError("give --best (or --study NAME) or --profile FILE, not both")
    if req.profile is None and not (req.best or req.study):
        raise UserError("say what to train: --best (the latest search's winner), --study NAME or --profile FILE")
    if req.resume and req.recipe != ho.Recipe():
        raise UserError("--resume continues the run with its own settings: drop the other training options")
    if req.profile is not None:
        return ho.from_profile(req.profile, store.open_existing(req.storage))
    storage = store.open_storage(req.storage, create=False)
    name = req.study or names.check_study_name(store.latest_study_name(storage))
    return ho.from_study(store.load(storage, name))


def resumed(source: ho.Source) -> TrainRun:
    """The interrupted run `--resume` continues."""
    if source.store is None:
        raise UserError(f"{source.label} has no study in the storage, so no run to resume was recorded")
    run = tr.resumable_run(source.store.train_runs())
    if run is None:
        raise UserError(
            f"no interrupted run with a last.pt in study {source.store.name!r}: start one with autotune train"
        )
    return run


def ensure_resized(data: str, imgsz: int, progress: Callable[[int, int], None]) -> Any:
    """The copy pre-resized to imgsz that the winner was measured from, written (or completed) if missing; the
    ResizeResult, or None when it was all there."""
    from autotune.data.resize import plan_resize, prepare, write_copy

    plan = plan_resize(data, imgsz)
    pending, est = prepare(plan)
    return write_copy(plan, pending, est, None, progress) if pending else None


@dataclass(frozen=True)
class NewRun:
    handover: ho.Handover
    run: TrainRun


def new_run(
    source: ho.Source,
    recipe: ho.Recipe,
    measure: bool,
    probe_phase: PhaseProbe,
    on_note: Callable[[str], None],
    before_phases: Callable[[ho.Handover], None] = lambda h: None,
) -> NewRun:
    """Resolve the run's settings, measure the phases the study lacks, and make the run's record."""
    machine = fingerprint()
    info = load_dataset(source.workload.data, check_labels=True)
    h = ho.make_handover(source, recipe, len(info.train), info.nc, machine)
    before_phases(h)
    phases = ho.gather_phases(h, source, machine, measure, probe_phase, on_note)
    rates = Rates.from_results(phases.get("mosaic"), phases.get("no_mosaic"), phases.get(ho.VALIDATION))
    run = tr.new_run(
        source.label,
        source.store.name if source.store is not None else None,
        source.trial,
        source.profile,
        h.config,
        h.args,
        h.optimizer,
        rates,
        machine.to_dict(),
        warnings=h.warnings,
        notes=h.notes,
        val_every=h.val_every,
        val_batch=h.val_batch,
    )
    return NewRun(h, run)


def train(
    source: ho.Source, run: TrainRun, model: str, args: dict[str, Any], on_event: tr.Event, resume: bool
) -> TrainRun:
    """The run itself, its record kept in the study (where there is one) and beside Ultralytics' results."""
    return tr.train(run, model, args, on_event, tr.persister(source.store), resume=resume)
