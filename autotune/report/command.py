"""`autotune report` from start to end: find the study, optionally measure the factor probes it lacks, build the
report's data and write its files. The CLI passes what to show progress with; nothing here prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.files import check_out_folder
from autotune.records.config import MAX_EPOCHS, whole
from autotune.report.build import build
from autotune.report.data import ReportData
from autotune.report.documents import FORMATS, write
from autotune.search import names, store
from autotune.search.command import remeasure


@dataclass(frozen=True)
class ReportRequest:
    study: str | None = None  # None: the latest autotune study in the storage
    storage: str | None = None  # None: the default SQLite file
    out: Path | None = None  # None: reports/<study>/
    formats: str = "md,html,json"
    epochs: int | None = None  # for the total-time estimate; None: the study's
    measure: bool = False  # first run the factor probes the study lacks
    repeats: int = 1


def check(req: ReportRequest) -> list[str]:
    """The formats asked for; every bad value a UserError before the storage is opened."""
    fmts = [f.strip() for f in req.formats.split(",") if f.strip()]
    if not fmts or set(fmts) - set(FORMATS):
        raise UserError(f"--format takes any of {','.join(FORMATS)}, got {req.formats!r}")
    if req.epochs is not None:
        whole("epochs", req.epochs, 1, MAX_EPOCHS)
    if req.repeats < 1:
        raise UserError(f"repeats must be >= 1, got {req.repeats}")
    if req.study is not None:
        names.check_study_name(req.study)
    if req.out is not None:
        check_out_folder(req.out)
    return fmts


def report(
    req: ReportRequest,
    on_measured: Callable[[int], None] = lambda n: None,
    on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None,
) -> tuple[ReportData, list[Path]]:
    """The report of one study, its files written; with req.measure, the missing factor probes first."""
    fmts = check(req)
    url = req.storage or store.default_url()
    storage = store.open_storage(url, create=False)
    # a name from the storage (another host may have made it) decides a folder: checked like a typed one
    name = names.check_study_name(req.study or store.latest_study_name(storage))
    st = store.load(storage, name, names.mask_url(url))
    data = build(st.snapshot(url), req.epochs)  # an unusable study fails here, before any probe
    if req.measure:
        on_measured(remeasure(storage, url, name, req.repeats, on_event))
        data = build(st.snapshot(url), req.epochs)
    folder = req.out or Path("reports") / name
    return data, write(data, folder, fmts, st.feasible_trials())
