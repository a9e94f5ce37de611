"""The command line: parse, call, print. No measuring or deciding happens here."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from autotune.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure how fast Ultralytics YOLO training runs on this machine, and find faster settings.",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def user_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """Bad input is one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except UserError as e:
            err.print(f"[red]autotune: error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


CPU_IMGSZ = 160  # default image size on a CPU-only machine: yolo11n at 640 px runs seconds per iteration

DataOpt = Annotated[
    str | None, typer.Option("--data", help="data.yaml of your dataset; default: the embedded synthetic workload")
]
ModelOpt = Annotated[str, typer.Option("--model", help="model YAML (built from scratch) or a local .pt file")]


def _data_yaml(data: str | None) -> str:
    """The user's data.yaml, or the embedded default workload (generated once, then reused)."""
    if data is not None:
        return str(Path(data).expanduser().resolve())
    from autotune.demo import DemoSpec, write_demo_dataset

    spec = DemoSpec()
    with err.status("preparing the embedded default workload (synthetic PPE dataset)...") as status:

        def progress(done: int, total: int) -> None:
            status.update(f"generating the embedded default workload: {done}/{total} images")

        ds = write_demo_dataset(spec, progress=progress)
    if not ds.reused:
        err.print(f"wrote {ds.n_train + ds.n_val} synthetic images to {ds.root} in {ds.seconds:.0f} s")
    return str(ds.data_yaml)


@app.command("demo-data")
@user_errors
def demo_data(
    out: Annotated[Path | None, typer.Option(help="folder to write; default: the user cache folder")] = None,
    images: Annotated[int, typer.Option(help="images in total (train + val)")] = 1000,
    size: Annotated[str, typer.Option(help="frame size WIDTHxHEIGHT")] = "1280x720",
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same bytes")] = 0,
) -> None:
    """Write the embedded default workload: a deterministic synthetic PPE-like detection dataset."""
    from autotune.config import parse_size
    from autotune.demo import DemoSpec, write_demo_dataset

    w, h = parse_size(size)
    spec = DemoSpec(images=images, width=w, height=h, seed=seed)
    with err.status("generating...") as status:
        ds = write_demo_dataset(spec, out=out, progress=lambda d, t: status.update(f"generating {d}/{t} images"))
    state = "already there" if ds.reused else f"written in {ds.seconds:.1f} s"
    err.print(f"{ds.n_train} train + {ds.n_val} val images, {ds.bytes / 2**20:.0f} MiB, {state}")
    print(ds.data_yaml)


def _some(paths: tuple[str, ...], most: int = 10) -> str:
    """The first few paths, and how many more."""
    return ", ".join(paths[:most]) + (f" and {len(paths) - most} more" if len(paths) > most else "")


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

    from autotune.config import ProbeOptions, TrainConfig
    from autotune.machine import default_device, default_workers
    from autotune.render import fmt_bytes
    from autotune.resize import compare_loaders, plan_resize, prepare

    options = ProbeOptions(iters=iters)  # every bad value fails before anything is written
    config = None
    if measure:
        workers = default_workers() if workers is None else workers
        config = TrainConfig(batch=batch, workers=workers, imgsz=imgsz, device=default_device())
    if processes is not None and processes < 1:
        raise UserError(f"processes must be >= 1, got {processes}")
    source = _data_yaml(data)
    with err.status("reading the dataset and estimating the copy..."):
        plan = plan_resize(source, imgsz, out, quality)
        pending, est = prepare(plan)
    for note in plan.notes:
        err.print(f"[dim]{note}[/dim]")
    result = _write_copy(plan, pending, est, processes, "resizing")
    if result.corrupt:
        err.print(
            f"[yellow]warning:[/yellow] skipped {len(result.corrupt)} unreadable image(s): {_some(result.corrupt)}",
            highlight=False,
            soft_wrap=True,
        )
    if result.kept:
        err.print(
            f"[yellow]warning:[/yellow] {len(result.kept)} image(s) copied at full size (format not writable): "
            f"{_some(result.kept)}",
            highlight=False,
            soft_wrap=True,
        )
    ratio = result.source_bytes / result.copy_bytes if result.copy_bytes else float("inf")
    err.print(
        f"{result.images} images at imgsz {imgsz}: {result.resized} resized, {result.as_is} copied as they are, "
        f"{result.already} already there; {result.seconds:.1f} s on {result.processes} process(es); image bytes "
        f"{fmt_bytes(result.source_bytes)} -> {fmt_bytes(result.copy_bytes)} ({ratio:.1f}x smaller); {result.out}",
        highlight=False,
        soft_wrap=True,
    )
    loaders = {}
    if config is not None:
        with err.status(f"loader-only throughput, original vs resized ({config.label()})..."):
            loaders = compare_loaders(source, result.data_yaml, config, "yolo11n.yaml", options)
        rates = {k: r.images_per_s for k, r in loaders.items()}
        for name, r in loaders.items():
            said = f"{r.images_per_s:,.1f} images/s" if r.images_per_s else f"{r.status}: {r.reason}"
            err.print(f"loader-only, {name}: {said} ({config.label()})", highlight=False)
        if rates["original"] and rates["resized"]:
            err.print(f"resized / original: {rates['resized'] / rates['original']:.2f}x", highlight=False)
    if as_json:
        print(json.dumps({**result.to_dict(), "loader_only": {k: r.to_dict() for k, r in loaders.items()}}))
    else:
        print(result.data_yaml)
    if any(r.status != "ok" for r in loaders.values()):
        raise typer.Exit(1)


ImgszOpt = Annotated[int | None, typer.Option(help="training image size (pixels); default 640, 160 on a CPU")]
BatchOpt = Annotated[int, typer.Option(help="batch size")]
WorkersOpt = Annotated[int | None, typer.Option(help="loader workers; default 8, capped at the CPU count")]
CacheOpt = Annotated[str, typer.Option(help="image cache: none, disk or ram")]
DeviceOpt = Annotated[str | None, typer.Option(help="'cpu' or a CUDA index like '0'; default: GPU 0 if any")]
EpochsOpt = Annotated[int, typer.Option(help="epochs of the planned run (decides Ultralytics' optimizer)")]
OptimizerOpt = Annotated[str, typer.Option(help="optimizer; 'auto' pins Ultralytics' choice for the run")]
ItersOpt = Annotated[int, typer.Option(help="measured iterations after warm-up")]
LimitOpt = Annotated[str | None, typer.Option("--memory-limit", help="GPU memory (RAM on CPU) limit: 0.9 or 20GiB")]
PageCacheOpt = Annotated[
    str, typer.Option(help="file state before reading: auto (as the full run will), warm, cold, asis")
]
TimeoutOpt = Annotated[float | None, typer.Option(help="hard limit in seconds per probe; default scales with it")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")]


def _setup(
    data: str | None,
    model: str,
    imgsz: int | None,
    batch: int,
    workers: int | None,
    cache: str,
    device: str | None,
    epochs: int,
    optimizer: str,
) -> tuple[Any, Any]:
    """TrainConfig and Workload from the shared options; every bad value is a UserError before any work."""
    from autotune.config import TrainConfig, Workload, resolve_model
    from autotune.dataset import load_dataset
    from autotune.machine import default_device, default_workers

    if epochs < 1:
        raise UserError(f"epochs must be >= 1, got {epochs}")
    device = device if device is not None else default_device()
    default_imgsz = imgsz is None
    if imgsz is None:
        imgsz = CPU_IMGSZ if device == "cpu" else 640
    config = TrainConfig(
        batch=batch,
        workers=default_workers() if workers is None else workers,
        imgsz=imgsz,
        cache=cache,
        device=device,
        optimizer=optimizer,
    )
    model = resolve_model(model)
    workload = Workload(data=_data_yaml(data), model=model, epochs=epochs)
    load_dataset(workload.data)  # bad data fails here with one line, before any subprocess starts
    if config.device == "cpu":  # said only once all input is known to be good: errors stay one line
        err.print("[dim]CPU only: no GPU found or --device cpu; timings are for this CPU[/dim]")
        if default_imgsz:
            err.print(f"[dim]CPU only: imgsz {imgsz} by default (640 px takes minutes per probe); pass --imgsz[/dim]")
    return config, workload


@app.command()
@user_errors
def probe(
    data: DataOpt = None,
    model: ModelOpt = "yolo11n.yaml",
    imgsz: ImgszOpt = None,
    batch: BatchOpt = 16,
    workers: WorkersOpt = None,
    cache: CacheOpt = "none",
    device: DeviceOpt = None,
    epochs: EpochsOpt = 100,
    optimizer: OptimizerOpt = "auto",
    iters: ItersOpt = 20,
    memory_limit: LimitOpt = None,
    page_cache: PageCacheOpt = "auto",
    timeout: TimeoutOpt = None,
    source: Annotated[
        str, typer.Option(help="original, or resized: from a copy pre-resized to imgsz (the staged subset only)")
    ] = "original",
    keep_scratch: Annotated[bool, typer.Option(help="keep the staged subset and Ultralytics' run folder")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure one training configuration: images/s, sec/iter, data stall, memory, cache cost."""
    from autotune.config import ProbeOptions
    from autotune.probe import probe as run_probe
    from autotune.render import probe_view

    options = ProbeOptions(
        iters=iters, memory_limit=memory_limit, page_cache=page_cache, timeout_s=timeout, keep_scratch=keep_scratch
    )
    config, workload = _setup(data, model, imgsz, batch, workers, cache, device, epochs, optimizer)
    config = config.with_(source=source)
    with err.status(f"probing {config.label()}...") as status:

        def progress(beat: dict[str, Any]) -> None:
            phase = beat.get("phase", "")
            if "iter" in beat:
                status.update(
                    f"probing {config.label()}: {phase} iteration {beat['iter']}, {beat['iter_s']:.2f} s/iter"
                )
            else:
                status.update(f"probing {config.label()}: {phase}...")

        result = run_probe(config, workload, options, on_progress=progress)
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        Console().print(probe_view(result))
    if not result.ok:
        raise typer.Exit(1)


@app.command()
@user_errors
def profile(
    data: DataOpt = None,
    model: ModelOpt = "yolo11n.yaml",
    imgsz: ImgszOpt = None,
    batch: BatchOpt = 16,
    workers: WorkersOpt = None,
    cache: CacheOpt = "none",
    device: DeviceOpt = None,
    epochs: EpochsOpt = 100,
    optimizer: OptimizerOpt = "auto",
    iters: ItersOpt = 20,
    memory_limit: LimitOpt = None,
    page_cache: PageCacheOpt = "auto",
    timeout: TimeoutOpt = None,
    worker_list: Annotated[
        str | None,
        typer.Option("--worker-list", help="loader workers to scale over, e.g. 0,1,2,4; default 0,1,2,4..CPUs"),
    ] = None,
    py_spy: Annotated[bool, typer.Option("--py-spy", help="record the loader workers with py-spy")] = False,
    out: Annotated[Path | None, typer.Option(help="folder for data and charts; default reports/profile-<time>")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Diagnose one configuration: data-bound or compute-bound? Worker scaling, cache costs, utilisation."""
    import datetime as dt

    from autotune.config import ProbeOptions
    from autotune.profiler import profile as run_profile
    from autotune.profiler import save
    from autotune.render import profile_view

    options = ProbeOptions(iters=iters, memory_limit=memory_limit, page_cache=page_cache, timeout_s=timeout)
    counts = None
    if worker_list is not None:
        try:
            counts = sorted({int(x) for x in worker_list.split(",") if x.strip()})
        except ValueError:
            raise UserError(f"--worker-list must be whole numbers separated by commas, got {worker_list!r}") from None
        if not counts or min(counts) < 0:
            raise UserError(f"--worker-list must hold workers >= 0, got {worker_list!r}")
    config, workload = _setup(data, model, imgsz, batch, workers, cache, device, epochs, optimizer)
    folder = out or Path("reports") / f"profile-{dt.datetime.now():%Y%m%d-%H%M%S}"
    with err.status(f"profiling {config.label()}...") as status:
        p = run_profile(config, workload, options, counts, py_spy, on_step=lambda s: status.update(f"profiling: {s}"))
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
    as_json: JsonOpt = False,
) -> None:
    """Find the fastest batch, workers, imgsz and cache under the memory limit, within the budget."""
    import shutil
    import time

    import psutil
    from rich.live import Live

    from autotune.config import Workload, parse_duration, resolve_model
    from autotune.demo import cache_root
    from autotune.machine import default_device, fingerprint
    from autotune.plan import check_space_not_empty, make_plan, with_autobatch_seed, write_winner_profile
    from autotune.probe import probe as run_probe
    from autotune.render import SearchProgress, search_view
    from autotune.search import Search, open_storage, outcome_to_dict

    budget_s = parse_duration(budget)
    target_s = parse_duration(target_epoch) if target_epoch else None
    if epochs < 1:
        raise UserError(f"epochs must be >= 1, got {epochs}")
    if iters is not None and iters < 1:
        raise UserError(f"iters must be >= 1, got {iters}")
    device = device if device is not None else default_device()
    if device != "cpu" and not device.isdigit():
        raise UserError(f"device must be 'cpu' or a CUDA index such as '0', got {device!r}")
    workload = Workload(data=_data_yaml(data), model=resolve_model(model), epochs=epochs)
    machine = fingerprint()
    plan = make_plan(
        workload,
        device,
        budget_s,
        batch,
        workers,
        imgsz,
        cache,
        vram_limit,
        baseline,
        target_s,
        storage,
        study,
        seed,
        fresh,
        machine,
        iters,
        tuple(tries or ()),
        source,
    )
    ram, disk = psutil.virtual_memory().available, shutil.disk_usage(Path(workload.data).parent).free
    check_space_not_empty(plan, ram, disk)
    store = open_storage(plan.settings.storage)
    if device != "cpu":  # on a GPU, Ultralytics' AutoBatch answer is a seed inside the space
        with err.status("asking Ultralytics AutoBatch for a seed batch size..."):
            plan, said = with_autobatch_seed(plan, device)
        err.print(f"[dim]{said}[/dim]")
    for note in plan.notes:
        err.print(f"[dim]{note}[/dim]")
    err.print(f"[dim]space: {plan.space.describe()}; study {plan.settings.study}[/dim]")
    view = SearchProgress(budget_s, time.monotonic, plan.n_train)
    runner = Search(
        plan.settings,
        plan.space,
        workload,
        machine,
        plan.dataset,
        plan.n_train,
        probe_fn=lambda c, w, o, cb: run_probe(c, w, o, on_progress=cb),
        storage=store,
        ram_available=ram,
        disk_free=disk,
        lock_path=cache_root() / "probe.lock",
        on_event=view.event,
    )
    with Live(view, console=err, refresh_per_second=2, transient=True):
        outcome = runner.run()
    written = write_winner_profile(plan, outcome)
    profile_path = str(written) if written else None
    if as_json:
        print(json.dumps({**outcome_to_dict(outcome), "profile": profile_path}))
    else:
        Console().print(search_view(outcome, profile_path))
    if outcome.interrupted:
        raise typer.Exit(130)
    if outcome.winner is None:
        raise typer.Exit(1)


@app.command()
@user_errors
def report(
    study: Annotated[str | None, typer.Option(help="study name; default: the latest study in the storage")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL; default the search's SQLite file")] = None,
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
    from autotune import report as rep
    from autotune.demo import cache_root
    from autotune.reportdoc import FORMATS, write
    from autotune.search import mask_url, open_storage

    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    if not fmts or set(fmts) - set(FORMATS):
        raise UserError(f"--format takes any of {','.join(FORMATS)}, got {formats!r}")
    if epochs is not None and epochs < 1:
        raise UserError(f"epochs must be >= 1, got {epochs}")
    if repeats < 1:
        raise UserError(f"repeats must be >= 1, got {repeats}")
    url = storage or f"sqlite:///{cache_root() / 'studies.db'}"
    if storage is None and not (cache_root() / "studies.db").exists():
        raise UserError("no study yet: run `autotune search` first")
    store = open_storage(url)
    name = study or rep.latest_study(store)
    snap = rep.snapshot(store, name, mask_url(url))
    if measure:
        from autotune.machine import fingerprint
        from autotune.plan import remeasure
        from autotune.probe import probe as run_probe

        rep.build(snap, epochs)  # an unusable study fails here, before any probe
        with err.status("measuring the missing factor probes...") as status:

            def on_event(kind: str, data: dict[str, Any]) -> None:
                if kind == "lever":
                    status.update(f"factor probe ({data['lever']}): {data['config'].label()}")

            n = remeasure(
                store,
                url,
                name,
                fingerprint(),
                repeats,
                lambda c, w, o, cb: run_probe(c, w, o, on_progress=cb),
                on_event,
            )
        err.print(f"[dim]{n} factor probe(s) measured and stored in the study[/dim]")
        snap = rep.snapshot(store, name, mask_url(url))
    data = rep.build(snap, epochs)
    import optuna

    folder = out or Path("reports") / name
    written = [str(p) for p in write(data, folder, fmts, optuna.load_study(study_name=name, storage=store))]
    if as_json:
        print(json.dumps({**data.to_dict(), "written": written}))
    else:
        from autotune.render import report_view

        Console().print(report_view(data, written))


def _write_copy(plan: Any, pending: list[int], est: Any, processes: int | None, label: str) -> Any:
    """resize.write_copy with a progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from autotune.resize import write_copy

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=len(pending))
        return write_copy(plan, pending, est, processes, lambda d, t: bar.update(task, completed=d, total=t))


def _ensure_resized(data: str, imgsz: int) -> None:
    """The copy pre-resized to imgsz that the winner was measured from: written (or completed) here if missing."""
    from autotune.resize import plan_resize, prepare

    plan = plan_resize(data, imgsz)
    pending, est = prepare(plan)
    if not pending:
        return
    result = _write_copy(plan, pending, est, None, f"writing the copy pre-resized to {imgsz} px")
    _say(f"wrote {result.images} images to {plan.out} in {result.seconds:.1f} s (one-time, as measured)")


def _say(text: str) -> None:
    """A line on stderr, unwrapped (paths and commands stay whole)."""
    err.print(text, soft_wrap=True)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def train(
    ctx: typer.Context,
    best: Annotated[bool, typer.Option("--best", help="the winner of the latest study in the storage")] = False,
    study: Annotated[str | None, typer.Option(help="the winner of this study")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL; default the SQLite file")] = None,
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
    resume: Annotated[bool, typer.Option("--resume", help="continue the study's interrupted run from last.pt")] = False,
    measure: Annotated[
        bool, typer.Option("--measure/--no-measure", help="probe the phases the study lacks before training")
    ] = True,
) -> None:
    """Train with the measured winner; each epoch's time against its phase-by-phase prediction.

    Further Ultralytics settings pass through as key=value (e.g. lr0=0.005); the measured ones (batch, imgsz,
    workers, cache, device, amp, nbs) cannot be changed here.
    """
    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")  # before Ultralytics is imported: nothing downloads
    from rich.markup import escape

    from autotune import handover as ho
    from autotune import train as tr
    from autotune.dataset import load_dataset
    from autotune.demo import cache_root
    from autotune.machine import fingerprint
    from autotune.predict import Rates
    from autotune.render import train_epoch_line, train_off_warning, train_prediction_lines, train_summary
    from autotune.search import open_storage

    extra = ho.parse_extra(list(ctx.args))
    if profile is not None and (best or study):
        raise UserError("give --best (or --study NAME) or --profile FILE, not both")
    if profile is None and not (best or study):
        raise UserError("say what to train: --best (the latest search's winner), --study NAME or --profile FILE")
    recipe = ho.Recipe(epochs, patience, optimizer, cos_lr, close_mosaic, extra)
    if resume and recipe != ho.Recipe():
        raise UserError("--resume continues the run with its own settings: drop the other training options")
    url = storage or f"sqlite:///{cache_root() / 'studies.db'}"
    store = open_storage(url)
    if profile is not None:
        source = ho.from_profile(profile, store)
    else:
        source = ho.from_study(ho.load_study(store, study or ho.latest_study_name(store)))
    machine = fingerprint()
    info = load_dataset(source.workload.data)
    out = Console(highlight=False, soft_wrap=True, markup=False)  # "[mosaic]" is text, not Rich markup

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "start":
            if data["prediction"] is not None:
                for line in train_prediction_lines(data["prediction"], data["setup_s"]):
                    out.print(line, style="dim" if line.startswith(("  ", "note")) else None)
            else:
                out.print(f"setup {data['setup_s']:.0f} s; no prediction (nothing measured)")
        elif kind == "epoch":
            out.print(train_epoch_line(data["record"]), style="bold")
            if data["causes"]:
                _say(f"[yellow]warning:[/yellow] {escape(train_off_warning(data['record'], data['causes']))}")
        elif kind == "final":
            run = data["run"]
            predicted = f" (predicted {run.predicted_final_val_s:.1f} s)" if run.predicted_final_val_s else ""
            out.print(f"final validation of best.pt {run.final_val_s:.1f} s{predicted}")
        elif kind == "warning":
            _say(f"[yellow]warning:[/yellow] {escape(data['text'])}")

    if resume:
        if source.study is None:
            raise UserError(f"{source.label} has no study in the storage, so no run to resume was recorded")
        run = tr.resumable_run(tr.runs_from_study(source.study))
        if run is None:
            raise UserError(
                f"no interrupted run with a last.pt in study {source.study.study_name!r}: start one with autotune train"
            )
        _say(f"resuming run {run.id} from {run.last_pt} (epochs recorded: {len(run.records)})")
        final = tr.train(run, "", {}, on_event, tr.persister(source.study), resume=True)
    else:
        h = ho.make_handover(source, recipe, len(info.train), info.nc, machine)
        _say(f"training {source.label}: {h.config.label()} device={h.config.device} optimizer={h.optimizer}")
        for note in h.notes:
            _say(f"[dim]note: {note}[/dim]")
        for warning in h.warnings:
            _say(f"[yellow]warning:[/yellow] {warning}")
        if h.config.source == "resized":
            _ensure_resized(source.workload.data, h.config.imgsz)
        phases = _train_phases(h, source, machine, measure)
        rates = Rates.from_results(phases.get("mosaic"), phases.get("no_mosaic"))
        run = tr.new_run(
            source.label,
            source.study.study_name if source.study is not None else None,
            source.trial,
            source.profile,
            h.config,
            h.args,
            h.optimizer,
            rates,
            machine.to_dict(),
            warnings=h.warnings,
            notes=h.notes,
        )
        final = tr.train(run, h.workload.model, h.args, on_event, tr.persister(source.study))
    if final.status == "interrupted":
        again = f"--profile {profile}" if profile else f"--study {final.study}"
        keep = f"{final.last_pt.name} keeps the last finished epoch"
        out.print(f"{train_summary(final)}; {keep}: continue with autotune train --resume {again}")
        raise typer.Exit(130)
    out.print(train_summary(final), style="bold")
    if final.status != "finished":
        _say(f"[red]training {final.status}:[/red] {final.sessions[-1].reason}")
        raise typer.Exit(1)


def _train_phases(h: Any, source: Any, machine: Any, measure: bool) -> dict[str, Any]:
    """The phase measurements the run needs: stored ones, else one probe each (shown as a step, kept in the study)."""
    from autotune import handover as ho
    from autotune.demo import cache_root
    from autotune.probe import probe as run_probe
    from autotune.search import host_lock

    def probe_fn(config: Any, workload: Any, options: Any, what: str) -> Any:
        try:
            with host_lock(cache_root() / "probe.lock"), err.status(f"{what}...") as status:

                def beat(b: dict[str, Any]) -> None:
                    status.update(f"{what}: {b.get('phase', '')} {b.get('iter', '')}")

                return run_probe(config, workload, options, on_progress=beat)
        except KeyboardInterrupt:
            _say(f"interrupted while {what}: nothing trained")
            raise typer.Exit(130) from None

    def on_note(text: str) -> None:
        _say(f"[dim]{text}[/dim]" if not text.startswith("warning:") else f"[yellow]{text}[/yellow]")

    return ho.gather_phases(h, source, machine, measure, probe_fn, on_note)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
