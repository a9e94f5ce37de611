"""The command line: parse, call, print. Requests are checked where they are resolved; nothing is measured or
decided here. Bad input is one line on stderr and exit code 2, never a traceback (base.py)."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from autotune.cli.base import (
    app,
    bar_callback,
    data_yaml,
    err,
    interrupt_code,
    progress_bar,
    say,
    user_errors,
)

__all__ = ["app", "main"]


DataOpt = Annotated[
    str | None, typer.Option("--data", help="data.yaml of your dataset; default: the embedded synthetic workload")
]
ModelOpt = Annotated[str, typer.Option("--model", help="model YAML (built from scratch) or a local .pt file")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")]
StorageOpt = Annotated[str | None, typer.Option(help="Optuna storage URL; default the search's SQLite file")]


@app.command("demo-data")
@user_errors
def demo_data(
    out: Annotated[Path | None, typer.Option(help="folder to write; default: the user cache folder")] = None,
    images: Annotated[int, typer.Option(help="images in total (train + val)")] = 1000,
    size: Annotated[str | None, typer.Option(help="frame size WIDTHxHEIGHT; default the variant's")] = None,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same bytes")] = 0,
    variant: Annotated[
        str,
        typer.Option(
            help="default: 1280x720 frames; loader-bound: 3840x2160 frames, slow to decode (train it at a "
            "small imgsz, e.g. 64 on a CPU, to see a data-bound run)"
        ),
    ] = "default",
) -> None:
    """Write the embedded default workload: a deterministic synthetic PPE-like detection dataset."""
    from autotune.data.demo import DemoSpec, write_demo_dataset
    from autotune.data.demo_draw import variant_size
    from autotune.units import parse_size

    w, h = variant_size(variant) if size is None else parse_size(size)
    if size is not None and variant != "default":
        from autotune.errors import UserError

        raise UserError(f"--size and --variant {variant} both set the frame size: give one")
    spec = DemoSpec(images=images, width=w, height=h, seed=seed)
    with err.status("generating...") as status:
        ds = write_demo_dataset(spec, out=out, progress=lambda d, t: status.update(f"generating {d}/{t} images"))
    state = "already there" if ds.reused else f"written in {ds.seconds:.1f} s"
    say(f"{ds.n_train} train + {ds.n_val} val images, {ds.bytes / 2**20:.0f} MiB, {state}")
    print(ds.data_yaml)


@app.command()
@user_errors
def resize(
    imgsz: Annotated[int, typer.Option(help="long side of the copy's images, pixels (the imgsz you will train at)")],
    data: DataOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="folder for the copy; default beside the dataset: <dataset folder>-<imgsz>px")
    ] = None,
    quality: Annotated[int, typer.Option(help="JPEG (and WebP) quality of re-encoded images, 1..100")] = 95,
    processes: Annotated[int | None, typer.Option(help="parallel processes; default the usable CPU cores")] = None,
    measure: Annotated[
        bool, typer.Option("--measure", help="then measure loader-only images/s of the original vs the copy at imgsz")
    ] = False,
    batch: Annotated[int, typer.Option(help="batch size for --measure")] = 16,
    workers: Annotated[int | None, typer.Option(help="loader workers for --measure; default 8, capped")] = None,
    iters: Annotated[int, typer.Option(help="measured batches for --measure")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Write a copy of the dataset with every image's long side shrunk to imgsz (labels unchanged)."""
    from autotune.data import resize as rz
    from autotune.report.terminal_train import resize_lines

    check = rz.ResizeRequest(imgsz, out, quality, processes, measure, batch, workers, iters).check()
    source = data_yaml(data)
    with err.status("reading the dataset and estimating the copy..."):
        plan = rz.plan_resize(source, imgsz, out, quality)
        pending, est = rz.prepare(plan)
    for note in plan.notes:
        say(note, "dim")
    with progress_bar("resizing") as bar:
        result = rz.write_copy(plan, pending, est, processes, bar_callback(bar, "resizing"))
    loaders = {}
    if check.config is not None:
        with err.status(f"loader-only throughput, original vs resized ({check.config.label()})..."):
            loaders = rz.compare_loaders(source, result.data_yaml, check.config, "yolo11n.yaml", check.options)
    for text, style in resize_lines(result, loaders, check.config):
        say(text, style)
    if as_json:
        print(json.dumps({**result.to_dict(), "loader_only": {k: r.to_dict() for k, r in loaders.items()}}))
    else:
        print(result.data_yaml)
    if any(r.status != "ok" for r in loaders.values()):
        raise typer.Exit(1)


DeviceOpt = Annotated[str | None, typer.Option(help="'cpu' or a CUDA index like '0'; default: GPU 0 if any")]
EpochsOpt = Annotated[int, typer.Option(help="epochs of the planned run (decides Ultralytics' optimizer)")]

# The options probe and profile share, declared once: each becomes a keyword parameter of both commands, and the
# command receives them together as one ProbeRequest (checked by measure.request.resolve before any work).
PROBE_OPTIONS: list[tuple[str, Any, Any]] = [
    ("data", DataOpt, None),
    ("model", ModelOpt, "yolo11n.yaml"),
    ("imgsz", Annotated[int | None, typer.Option(help="training image size (pixels); default 640, 160 on a CPU")],
     None),
    ("batch", Annotated[int, typer.Option(help="batch size")], 16),
    ("workers", Annotated[int | None, typer.Option(help="loader workers; default 8, capped at the CPU count")], None),
    ("cache", Annotated[str, typer.Option(help="image cache: none, disk or ram")], "none"),
    ("device", DeviceOpt, None),
    ("epochs", EpochsOpt, 100),
    ("optimizer", Annotated[str, typer.Option(help="optimizer; 'auto' pins Ultralytics' choice for the run")], "auto"),
    ("compile", Annotated[str, typer.Option(help="torch.compile: off, default, reduce-overhead or "
                                                 "max-autotune-no-cudagraphs (its compile time is reported apart)")],
     "off"),
    ("amp", Annotated[bool, typer.Option("--amp/--no-amp", help="mixed precision on a GPU (Ultralytics' default); "
                                                                "a CPU trains in FP32 either way")], True),
    ("bf16", Annotated[bool, typer.Option("--bf16", help="mixed precision in bfloat16 (a GPU with native bfloat16; "
                                                         "no loss scaling)")], False),
    ("val_batch", Annotated[int | None, typer.Option(help="validation batch; default Ultralytics' 2x the training "
                                                          "batch")], None),
    ("iters", Annotated[int, typer.Option(help="measured iterations after warm-up")], 20),
    ("min_window_s", Annotated[float, typer.Option("--min-window", help="measure at least this many seconds after "
                                                                        "warm-up (within a cap of iterations)")], 2.0),
    ("memory_limit", Annotated[str | None, typer.Option("--memory-limit",
                                                         help="GPU memory (RAM on CPU) limit: 0.9 or 20GiB")], None),
    ("page_cache", Annotated[str, typer.Option(help="file state before reading: auto (as the full run will), warm, "
                                                    "cold, asis")], "auto"),
    ("timeout_s", Annotated[float | None, typer.Option("--timeout", help="hard limit in seconds per probe; default "
                                                                         "scales with it")], None),
]  # fmt: skip


def probe_options(fn: Callable[..., None]) -> Callable[..., None]:
    """Give a command the shared probe options (PROBE_OPTIONS); it receives them as `request: ProbeRequest`,
    with its own `source` and `keep_scratch` folded in where it has them."""
    from autotune.measure.request import ProbeRequest

    own = [p for name, p in inspect.signature(fn, eval_str=True).parameters.items() if name != "request"]
    shared = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=t) for n, t, d in PROBE_OPTIONS
    ]
    shared_names = {p.name for p in shared}
    fields = shared_names | {"source", "keep_scratch"}

    @functools.wraps(fn)
    def command(**typed: Any) -> None:
        request = ProbeRequest(**{k: v for k, v in typed.items() if k in fields})
        fn(request=request, **{k: v for k, v in typed.items() if k not in shared_names})

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*shared, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)]
    )
    command.__annotations__ = {p.name: p.annotation for p in (*shared, *own)}
    return command


def _resolve_probe(request: Any) -> Any:
    """A probe request checked before any work, its notes said once all input is known to be good."""
    from autotune.measure.request import resolve

    resolved = resolve(request, data_yaml)
    for note in resolved.notes:
        say(note, "dim")
    return resolved


@app.command()
@user_errors
@probe_options
def probe(
    request: Any,
    source: Annotated[
        str, typer.Option(help="original, or resized: from a copy pre-resized to imgsz (the staged subset only)")
    ] = "original",
    keep_scratch: Annotated[bool, typer.Option(help="keep the staged subset and Ultralytics' run folder")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure one training configuration: images/s, sec/iter, data stall, memory, cache cost."""
    from autotune.measure.probe import probe as run_probe
    from autotune.report.terminal import beat_text, probe_view
    from autotune.status import exit_code

    r = _resolve_probe(request)
    what = f"probing {r.config.label()}"
    with err.status(f"{what}...") as status:
        result = run_probe(r.config, r.workload, r.options, on_progress=lambda b: status.update(beat_text(what, b)))
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        Console().print(probe_view(result))
    if exit_code(result.status):
        raise typer.Exit(exit_code(result.status))


@app.command()
@user_errors
@probe_options
def profile(
    request: Any,
    worker_list: Annotated[
        str | None,
        typer.Option("--worker-list", help="loader workers to scale over, e.g. 0,1,2,4; default 0,1,2,4..CPUs"),
    ] = None,
    py_spy: Annotated[bool, typer.Option("--py-spy", help="record the loader workers with py-spy")] = False,
    out: Annotated[Path | None, typer.Option(help="folder for data and charts; default reports/profile-<time>")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Diagnose one configuration: data-bound or compute-bound? Worker scaling, cache costs, utilisation."""
    from autotune.measure.profile import parse_worker_list, profile_folder
    from autotune.measure.profile import profile as run_profile
    from autotune.report.profile_files import save
    from autotune.report.terminal_profile import profile_view

    counts = parse_worker_list(worker_list)
    folder = profile_folder(out)
    r = _resolve_probe(request)
    with err.status(f"profiling {r.config.label()}...") as status:
        p = run_profile(
            r.config, r.workload, r.options, counts, py_spy, on_step=lambda s: status.update(f"profiling: {s}")
        )
        written = [str(f) for f in save(p, folder)]
    if as_json:
        print(json.dumps({**p.to_dict(), "written": written}))
    else:
        Console().print(profile_view(p, written))
    if p.diagnosis is None:
        raise typer.Exit(1)


@app.command()
@user_errors
def search(
    budget: Annotated[str, typer.Option(help="wall-clock budget for everything, e.g. 20min, 90s, 1h")] = "20min",
    data: DataOpt = None,
    model: ModelOpt = "yolo11n.yaml",
    device: DeviceOpt = None,
    batch: Annotated[str | None, typer.Option(help="batch range or list, e.g. 8-64 or 8,16,32")] = None,
    workers: Annotated[str | None, typer.Option(help="workers range or list; default 0..min(cores, 16)")] = None,
    imgsz: Annotated[str | None, typer.Option(help="image sizes, e.g. 416,512,640 (multiples of 32)")] = None,
    cache: Annotated[str | None, typer.Option(help="cache modes to try; default none,disk,ram")] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="original,resized: also train from a copy pre-resized to imgsz; default: where it can matter"
        ),
    ] = None,
    epochs: EpochsOpt = 100,
    vram_limit: Annotated[
        str | None, typer.Option("--vram-limit", help="memory limit: 0.9 (fraction) or 20GiB; RAM on a CPU")
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="reference config, e.g. batch=16,workers=8,imgsz=640,cache=none")
    ] = None,
    target_epoch: Annotated[
        str | None, typer.Option(help="pick the largest image size whose epoch fits, e.g. 30min")
    ] = None,
    tries: Annotated[
        list[str] | None,
        typer.Option("--try", help="a config to measure early, e.g. batch=64,cache=ram (repeatable; inside the space)"),
    ] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL; default an SQLite file")] = None,
    study: Annotated[str | None, typer.Option(help="study name; default derived from workload, machine, space")] = None,
    seed: Annotated[int, typer.Option(help="sampler seed")] = 0,
    fresh: Annotated[bool, typer.Option(help="start a new study instead of resuming")] = False,
    iters: Annotated[
        int | None, typer.Option(help="measured iterations per probe; default 10 on CPU, 20 on GPU")
    ] = None,
    compile_modes: Annotated[
        str | None,
        typer.Option(
            "--compile",
            help="torch.compile modes to search, e.g. default,off (a one-time compile per run, spread over --epochs)",
        ),
    ] = None,
    rank_on: Annotated[
        str,
        typer.Option(
            "--rank-on",
            help="rank on the projected 'epoch' (training + one validation pass, as Ultralytics validates every "
            "epoch) or on 'train' alone",
        ),
    ] = "epoch",
    as_json: JsonOpt = False,
) -> None:
    """Find the fastest batch, workers, imgsz and cache under the memory limit, within the budget."""
    import time

    from rich.live import Live

    from autotune.report.terminal import SearchProgress, search_view
    from autotune.search import command
    from autotune.search.plan import SearchRequest
    from autotune.search.settings import outcome_to_dict

    req = SearchRequest(data=data, model=model, budget=budget, device=device, batch=batch, workers=workers,
                        imgsz=imgsz, cache=cache, source=source, epochs=epochs, vram_limit=vram_limit,
                        baseline=baseline, target_epoch=target_epoch, tries=tuple(tries or ()), storage=storage,
                        study=study, seed=seed, fresh=fresh, iters=iters, rank_on=rank_on,
                        compile=compile_modes)  # fmt: skip
    with err.status("planning the search...") as status:
        prepared = command.prepare(req, data_yaml, status.update)
    for note in prepared.notes:
        say(note, "dim")
    view = SearchProgress(prepared.plan.settings.budget_s, time.monotonic, prepared.plan.n_train)
    with Live(view, console=err, refresh_per_second=2, transient=True):
        outcome, written = command.run(prepared, view.event)
    profile_path = str(written) if written else None
    if as_json:
        print(json.dumps({**outcome_to_dict(outcome), "profile": profile_path}))
    else:
        Console().print(search_view(outcome, profile_path))
    if outcome.interrupted:
        raise typer.Exit(interrupt_code())
    if outcome.winner is None:
        raise typer.Exit(1)


@app.command()
@user_errors
def report(
    study: Annotated[str | None, typer.Option(help="study name; default: the latest study in the storage")] = None,
    storage: StorageOpt = None,
    out: Annotated[Path | None, typer.Option(help="output folder; default reports/<study>/")] = None,
    formats: Annotated[str, typer.Option("--format", help="any of md,html,json")] = "md,html,json",
    epochs: Annotated[int | None, typer.Option(help="epochs for the total-time estimate; default the study's")] = None,
    measure: Annotated[
        bool, typer.Option("--measure", help="first run the factor probes the study lacks (on the study's machine)")
    ] = False,
    repeats: Annotated[
        int, typer.Option(help="with --measure: measurements per lever, baseline and winner (intervals)")
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Speedup breakdown of a study: each lever measured alone beside the story's rule, and the interaction."""
    from autotune.report.command import ReportRequest
    from autotune.report.command import report as make_report
    from autotune.report.terminal import report_view

    req = ReportRequest(study, storage, out, formats, epochs, measure, repeats)
    with err.status("building the report...") as status:

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "lever":
                status.update(f"factor probe ({data['lever']}): {data['config'].label()}")

        def on_measured(n: int) -> None:
            say(f"{n} factor probe(s) measured and stored in the study", "dim")

        data, files = make_report(req, on_measured, on_event)
    written = [str(p) for p in files]
    if as_json:
        print(json.dumps({**data.to_dict(), "written": written}))
    else:
        Console().print(report_view(data, written))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def train(
    ctx: typer.Context,
    best: Annotated[bool, typer.Option("--best", help="the winner of the latest study in the storage")] = False,
    study: Annotated[str | None, typer.Option(help="the winner of this study")] = None,
    storage: StorageOpt = None,
    profile: Annotated[Path | None, typer.Option(help="a profile written by autotune search (profiles/*.yaml)")] = None,
    epochs: Annotated[int | None, typer.Option(help="epochs; default the study's planned epochs")] = None,
    patience: Annotated[int | None, typer.Option(help="early stopping: epochs without improvement")] = None,
    optimizer: Annotated[
        str | None, typer.Option(help="default: the measured optimizer, pinned; 'auto' lets Ultralytics pick")
    ] = None,
    cos_lr: Annotated[bool | None, typer.Option("--cos-lr/--no-cos-lr", help="cosine learning-rate schedule")] = None,
    close_mosaic: Annotated[
        int | None, typer.Option(help="last epochs without mosaic (Ultralytics' default 10)")
    ] = None,
    val_every: Annotated[
        int, typer.Option(help="validate after every k-th epoch and the last (Ultralytics: every epoch)")
    ] = 1,
    val_batch: Annotated[
        int | None, typer.Option(help="validation batch (Ultralytics: 2x the training batch); measured first")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the study's interrupted run from last.pt")] = False,
    measure: Annotated[
        bool, typer.Option("--measure/--no-measure", help="probe the phases the study lacks before training")
    ] = True,
) -> None:
    """Train with the measured winner; each epoch's time against its phase-by-phase prediction.

    Further Ultralytics settings pass through as key=value (e.g. lr0=0.005); the measured ones (batch, imgsz,
    workers, cache, device, amp, nbs) cannot be changed here.
    """
    from autotune.report.terminal_train import TrainPrinter, train_summary
    from autotune.train import command as tc
    from autotune.train import handover as ho

    recipe = ho.Recipe(
        epochs, patience, optimizer, cos_lr, close_mosaic, ho.parse_extra(list(ctx.args)), val_every, val_batch
    )
    req = tc.TrainRequest(best, study, storage, profile, recipe, resume, measure)
    source = tc.source_for(req)
    out = Console(highlight=False, soft_wrap=True, markup=False)  # "[mosaic]" is text, not Rich markup
    printer = TrainPrinter(out.print, say)
    if resume:
        run = tc.resumed(source)
        say(f"resuming run {run.id} from {run.last_pt} (epochs recorded: {len(run.records)})")
        final = tc.train(source, run, "", {}, printer.event, resume=True)
    else:
        new = tc.new_run(source, recipe, measure, _phase_probe, printer.note, _before_phases(source))
        final = tc.train(source, new.run, new.handover.workload.model, new.handover.args, printer.event, resume=False)
    if final.status == "interrupted":
        again = f"--profile {profile}" if profile else f"--study {final.study}"
        keep = f"{final.last_pt.name} keeps the last finished epoch"
        out.print(f"{train_summary(final)}; {keep}: continue with autotune train --resume {again}")
        raise typer.Exit(interrupt_code())
    out.print(train_summary(final), style="bold")
    if final.status != "finished":
        say(f"training {final.status}: {final.sessions[-1].reason}", "red")
        raise typer.Exit(1)


def _before_phases(source: Any) -> Callable[[Any], None]:
    """What `train` says (and makes) once its settings are resolved, before any phase is probed."""
    from autotune.train import command as tc

    def before(h: Any) -> None:
        say(f"training {source.label}: {h.config.label()} device={h.config.device} optimizer={h.optimizer}")
        for note in h.notes:
            say(f"note: {note}", "dim")
        for warning in h.warnings:
            say(f"warning: {warning}", "yellow")
        if h.config.source == "resized":
            label = f"writing the copy pre-resized to {h.config.imgsz} px"
            with progress_bar(label) as bar:
                result = tc.ensure_resized(source.workload.data, h.config.imgsz, bar_callback(bar, label))
            if result is not None:
                say(f"wrote {result.images} images to {result.out} in {result.seconds:.1f} s (one-time, as measured)")

    return before


def _phase_probe(config: Any, workload: Any, options: Any, what: str) -> Any:
    """One phase probe for `train`, shown as a step; Ctrl-C there trains nothing."""
    from autotune.measure.probe import probe as run_probe
    from autotune.report.terminal import beat_text
    from autotune.search.command import lock_path
    from autotune.search.rules import host_lock

    try:
        with host_lock(lock_path()), err.status(f"{what}...") as status:
            return run_probe(config, workload, options, on_progress=lambda b: status.update(beat_text(what, b)))
    except KeyboardInterrupt:
        say(f"interrupted while {what}: nothing trained")
        raise typer.Exit(interrupt_code()) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
