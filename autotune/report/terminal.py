"""Rich renderings for the terminal: probe results, profiles, the search (live and done), reports, training runs.
They only draw: every number comes from the data they are given."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from autotune.measure.profile import Profile, saturation
from autotune.records.probe import ProbeResult
from autotune.records.run import EpochRecord, TrainRun, relative_error
from autotune.report.data import ReportData
from autotune.search.runner import SearchOutcome
from autotune.status import terminal_style
from autotune.train.predict import EpochPlan, RunPrediction
from autotune.train.run import headline_metrics
from autotune.units import fmt_bytes, fmt_s


def _kv(title: str) -> Table:
    t = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    t.add_column(style="dim")
    t.add_column()
    return t


def probe_view(r: ProbeResult) -> Group:
    """The whole probe result: status first, then throughput, settings, memory, cache and files."""
    parts: list[Any] = []
    head = Text()
    head.append(f"probe {r.status}", style=terminal_style(r.status))
    if r.reason:
        head.append(f": {r.reason}")
    parts.append(head)

    if r.stats:
        s = r.stats
        t = _kv("Throughput")
        t.add_row("images/s", f"[bold]{s.images_per_s:.1f}[/bold]  (mean over {s.n} measured iterations)")
        t.add_row(
            "sec/iter median [IQR]",
            f"{fmt_s(s.sec_per_iter_median)}  [{fmt_s(s.sec_per_iter_q1)} - {fmt_s(s.sec_per_iter_q3)}]"
            f"  (spread {s.iqr_rel:.0%})",
        )
        t.add_row("data wait / compute", f"{fmt_s(s.data_wait_mean_s)} / {fmt_s(s.compute_mean_s)} per iteration")
        t.add_row("data-stall fraction", f"{s.stall_fraction:.1%}")
        t.add_row("optimizer step", f"{fmt_s(s.step_s)} every {s.accumulate} iterations ({fmt_s(s.step_share_s)}/iter)")
        epoch = r.projected_epoch_s()
        if epoch is not None:
            t.add_row("projected epoch", f"{fmt_s(epoch)}  ({r.workload.get('n_train')} training images)")
        warm = r.timings.get("warmup")
        settled = "settled" if r.timings.get("settled") else "did not settle"
        t.add_row("warm-up discarded", f"{warm} iterations ({settled})")
        parts.append(t)

    if r.effective:
        t = Table(title="Requested vs effective", title_justify="left", box=None, padding=(0, 2))
        t.add_column("setting", style="dim")
        t.add_column("requested")
        t.add_column("effective")
        acc = r.requested.get("nbs", 64)
        rows = [
            ("batch", r.requested.get("batch"), r.effective.get("batch")),
            ("workers", r.requested.get("workers"), r.effective.get("workers")),
            ("loader processes", r.requested.get("workers"), r.effective.get("loader_processes")),
            ("cache", r.requested.get("cache"), r.effective.get("cache")),
            ("imgsz", r.requested.get("imgsz"), r.effective.get("imgsz")),
            ("AMP", r.requested.get("amp"), r.effective.get("amp")),
            ("accumulate", max(round(acc / r.requested.get("batch", 1)), 1), r.effective.get("accumulate")),
            ("optimizer", r.requested.get("optimizer"), r.effective.get("optimizer")),
            ("device", r.requested.get("device"), r.effective.get("device")),
        ]
        for name, req, got in rows:
            style = "" if str(req) == str(got) or name in ("AMP", "optimizer", "device") else "yellow"
            t.add_row(name, str(req), Text(str(got), style=style))
        parts.append(t)
        if r.effective.get("optimizer_reason"):
            parts.append(Text(f"optimizer: {r.effective['optimizer_reason']}", style="dim"))

    if r.memory:
        m = r.memory
        t = _kv("Memory")
        t.add_row(
            f"peak host ({m.host_kind.upper()})", f"{fmt_bytes(m.peak_host_bytes)} (main process + loader workers)"
        )
        if m.host_limit_bytes:
            t.add_row("host limit", fmt_bytes(m.host_limit_bytes))
        t.add_row("peak GPU reserved", fmt_bytes(m.peak_gpu_reserved_bytes) if m.peak_gpu_reserved_bytes else "n/a")
        if m.gpu_limit_bytes:
            t.add_row("GPU limit (enforced)", fmt_bytes(m.gpu_limit_bytes))
        if m.val_batch:
            peak = m.val_peak_gpu_bytes if m.val_peak_gpu_bytes else m.val_peak_host_bytes
            where = "GPU" if m.val_peak_gpu_bytes else "host"
            t.add_row(
                f"validation batch {m.val_batch}",
                f"{fmt_s(m.val_batch_s)} compute, {fmt_s(m.val_data_s)} loading, peak {fmt_bytes(peak)} ({where})",
            )
        parts.append(t)

    for c in (r.cache, r.source_cost):
        if c is None or c.mode == "none":
            continue
        t = _kv("Pre-resized copy: one-time cost" if c.mode == "resized" else f"Cache ({c.mode}) one-time cost")
        t.add_row("subset", f"{c.subset_images} images in {fmt_s(c.subset_s)}, {fmt_bytes(c.subset_bytes)}")
        t.add_row("whole dataset (est.)", f"{c.full_images} images: {fmt_s(c.full_s)}, {fmt_bytes(c.full_bytes)}")
        fits = {True: "yes", False: "[red]no[/red]", None: "n/a"}[c.fits]
        t.add_row("fits", f"{fits}: {c.rule}")
        parts.append(t)

    if r.files:
        f = r.files
        t = _kv("Files")
        before = "n/a" if f.resident_before is None else f"{f.resident_before:.0%} in page cache"
        t.add_row("before probe", before)
        t.add_row("read at start", f"{f.read} ({f.action})")
        t.add_row("full run regime", f"{f.regime}: {f.regime_reason}")
        parts.append(t)

    if r.subset:
        s = r.subset
        parts.append(
            Text(
                f"subset: {s.get('train_images')} train / {s.get('val_images')} val images staged, "
                f"up to {s.get('max_objects')} objects per image"
                + ("; window revisits images" if s.get("revisits") else ""),
                style="dim",
            )
        )
    for w in r.warnings:
        parts.append(Text(f"warning: {w}", style="yellow"))
    if r.log_path:
        parts.append(Text(f"log: {r.log_path}", style="dim"))
    return Group(*parts)


def profile_view(p: Profile, written: list[str]) -> Group:
    """Verdict first, then the three ceilings, worker scaling, cache bench, utilisation and py-spy."""
    parts: list[Any] = []
    d = p.diagnosis
    if d is None:
        parts.append(
            Text(f"no verdict: the end-to-end probe ended {p.probe.status}: {p.probe.reason}", style="bold red")
        )
    else:
        style = {"data-bound": "bold yellow", "compute-bound": "bold green"}.get(d.verdict, "bold cyan")
        head = Text()
        head.append(d.verdict, style=style)
        head.append(f": {d.reason}")
        parts.append(head)
        t = _kv("Throughput ceilings (images/s)")
        t.add_row("end to end", f"[bold]{d.end_to_end_ips:.1f}[/bold]  (data stall {d.stall_fraction:.1%})")
        t.add_row(
            "loader only",
            "n/a"
            if d.loader_ips is None
            else f"{d.loader_ips:.1f}  (headroom {d.loader_headroom:.2f}x, {p.config['workers']} workers, no model)",
        )
        t.add_row(
            "compute only",
            "n/a"
            if d.compute_ips is None
            else f"{d.compute_ips:.1f}  (headroom {d.compute_headroom:.2f}x, batch already on the device)",
        )
        parts.append(t)

    if p.scaling:
        t = Table(title="Loader-only worker scaling", title_justify="left", box=None, padding=(0, 2))
        t.add_column("workers", justify="right")
        t.add_column("images/s", justify="right")
        t.add_column("")
        for s in p.scaling:
            t.add_row(str(s.workers), f"{s.images_per_s:.1f}" if s.images_per_s else "-", s.reason or s.status)
        parts.append(t)
        sat = saturation(p.scaling)
        if sat is not None:
            parts.append(Text(f"saturates at {sat} workers (within 10% of the best loader-only rate)", style="dim"))

    if p.cache:
        c = p.cache
        t = Table(
            title=f"Image access, one worker, imgsz {c.imgsz} ({c.sample_images} images)",
            title_justify="left",
            box=None,
            padding=(0, 2),
        )
        t.add_column("cache")
        t.add_column("state")
        t.add_column("ms/image", justify="right")
        t.add_column("images/s", justify="right")
        for r in c.reads:
            t.add_row(r.mode, r.state, f"{r.per_image_s * 1000:.2f}", f"{r.images_per_s:,.0f}")
        parts.append(t)
        t = Table(title="One-time cache cost, whole dataset", title_justify="left", box=None, padding=(0, 2))
        for col in ("cache", "build", "size", "available", "fits", "pays off after"):
            t.add_column(col)
        advice = {a.mode: a for a in p.cache_advice}
        for b in c.builds:
            a = advice.get(b.mode)
            pays = (
                "n/a"
                if a is None
                else ("never" if a.break_even_epochs is None else f"{a.break_even_epochs:.1f} epochs")
            )
            t.add_row(
                b.mode,
                fmt_s(b.full_s),
                fmt_bytes(b.full_bytes),
                fmt_bytes(b.available_bytes),
                "yes" if b.fits else "[red]no[/red]",
                pays,
            )
        parts.append(t)
        parts.append(
            Text(
                "pays off after: one-time build / (read time saved per image x training images), "
                "if the loader is what limits the run",
                style="dim",
            )
        )
        if c.read("resized", "warm") is not None:
            parts.append(
                Text(
                    f"resized: the same images pre-resized to {c.imgsz} px once (autotune resize --imgsz {c.imgsz}), "
                    "its build on every core",
                    style="dim",
                )
            )
        if p.page_cache_note:
            parts.append(Text(p.page_cache_note, style="dim"))
    elif p.cache_error:
        parts.append(Text(f"cache bench failed: {p.cache_error}", style="red"))

    util = p.probe.extras.get("utilisation")
    if util:
        t = _kv("Utilisation during the window")
        cores = ", ".join(f"{c:.0f}%" for c in util["cpu_per_core_mean"])
        t.add_row("CPU per core", f"{cores}  (mean {util['cpu_total_mean']:.0f}%)")
        t.add_row("RSS peak (tree)", fmt_bytes(util["rss_peak_bytes"]))
        gpu = util.get("gpu_util_mean")
        t.add_row("GPU", "n/a" if gpu is None else f"{gpu:.0f}% busy, {fmt_bytes(util.get('gpu_mem_peak_bytes'))}")
        t.add_row(
            "sampler cost",
            f"{util['sampler_cpu_s']:.2f} CPU s of {util['tree_cpu_s']:.1f} ({util['overhead']:.1%}, "
            f"{util['samples']} samples)",
        )
        parts.append(t)

    spy = p.probe.extras.get("py_spy")
    if spy:
        if not spy.get("available") or not spy.get("top"):
            parts.append(Text(f"py-spy: {spy.get('message') or 'no samples recorded'}", style="yellow"))
        else:
            t = Table(title="Loader workers: top functions by own time (py-spy)", title_justify="left", box=None)
            t.add_column("share", justify="right")
            t.add_column("function")
            t.add_column("where", style="dim")
            for f in spy["top"]:
                t.add_row(f"{f['share']:.0%}", f["function"], f["location"])
            parts.append(t)
    for n in p.notes:
        parts.append(Text(f"note: {n}", style="dim"))
    for w in p.probe.warnings:
        parts.append(Text(f"warning: {w}", style="yellow"))
    if written:
        parts.append(Text(f"written: {', '.join(written)}", style="dim"))
    return Group(*parts)


class SearchProgress:
    """Live view of a search: budget bar, trial counts, the running trial, the best so far. Fed by events."""

    def __init__(self, budget_s: float, clock: Any, n_train: int) -> None:
        self.budget_s, self.clock, self.n_train = budget_s, clock, n_train
        self.t0 = clock()
        self.counts = {"done": 0, "pruned": 0, "infeasible": 0, "failed": 0}
        self.running = "starting"
        self.beat = ""
        self.best: tuple[float, str] | None = None
        self.note = ""
        self.rung = False  # the next trial is the batch ladder's rung (ladder.py), not the sampler's

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "note":
            self.note = data["text"]
        elif kind == "reference":
            self.running, self.beat = f"baseline ({data['key']}): {data['config'].label()}", ""
        elif kind == "rung":
            self.rung = True
        elif kind == "trial":
            why = " (batch ladder)" if self.rung else ""
            self.running, self.beat, self.rung = f"trial {data['number']}{why}: {data['config'].label()}", "", False
        elif kind == "lever":
            self.running, self.beat = f"factor probe ({data['lever']}): {data['config'].label()}", ""
        elif kind == "beat":
            if "iter" in data:
                self.beat = f"{data.get('phase')} iteration {data['iter']}, {data.get('iter_s', 0):.2f} s/iter"
            else:
                self.beat = f"{data.get('phase', '')}..."
        elif kind == "done":
            self.counts["done"] += 1
            if self.best is None or data["epoch_s"] < self.best[0]:
                self.best = (data["epoch_s"], data["config"].label())
        elif kind in ("pruned", "infeasible", "failed"):
            self.counts[kind] += 1

    def __rich__(self) -> Table:
        elapsed = self.clock() - self.t0
        frac = min(elapsed / self.budget_s, 1.0) if self.budget_s else 1.0
        bar = "█" * int(frac * 30) + "░" * (30 - int(frac * 30))
        t = _kv("autotune search")
        t.add_row("budget", f"{bar} {fmt_s(elapsed)} of {fmt_s(self.budget_s)}")
        c = self.counts
        t.add_row(
            "trials", f"{c['done']} finished, {c['pruned']} pruned, {c['infeasible']} infeasible, {c['failed']} failed"
        )
        t.add_row("running", f"{self.running}  {self.beat}")
        best = "none yet" if self.best is None else f"{fmt_s(self.best[0])}/epoch  ({self.best[1]})"
        t.add_row("best", best)
        if self.note:
            t.add_row("note", Text(self.note, style="yellow"))
        return t


def search_view(o: SearchOutcome, profile_path: str | None) -> Group:
    """The front, the winner against the baseline, and why the search stopped."""
    parts: list[Any] = []
    if o.winner is None:
        parts.append(Text("no feasible configuration found", style="bold red"))
    t = Table(title="Speed vs resolution: the fastest feasible config per image size", title_justify="left")
    for col in ("imgsz", "batch", "workers", "cache", "images/s", "sec/iter", "epoch", "trial"):
        t.add_column(col, justify="right" if col not in ("cache",) else "left")
    for r in o.front:
        mark = " *" if o.winner and r.number == o.winner.number else ""
        c = r.config
        t.add_row(
            str(c["imgsz"]),
            str(c["batch"]),
            str(c["workers"]),
            c["cache"],
            f"{r.images_per_s:.1f}" if r.images_per_s else "-",
            fmt_s(r.sec_per_iter),
            fmt_s(r.epoch_s),
            f"{r.number}{mark}",
        )
    parts.append(t)
    if o.winner and o.baseline and o.baseline.stats:
        w = o.winner
        base_epoch = o.n_train / o.baseline.stats.images_per_s
        b = o.baseline.requested
        same_size = int(w.config["imgsz"]) == int(b["imgsz"])
        line = Text()
        line.append(
            f"winner (trial {w.number}): {fmt_s(w.epoch_s)}/epoch vs baseline {fmt_s(base_epoch)}/epoch "
            f"(batch={b['batch']} workers={b['workers']} imgsz={b['imgsz']} cache={b['cache']}): ",
        )
        line.append(f"{base_epoch / (w.epoch_s or 1):.2f}x", style="bold green")
        if not same_size:
            line.append(f"  (at imgsz {w.config['imgsz']} vs {b['imgsz']}: a smaller image is not a free win)")
        parts.append(line)
        if (w.epoch_s or 0) > base_epoch:
            parts.append(
                Text(
                    "the baseline is faster than every configuration tried: keep it, widen the space "
                    "(--batch, --workers, --imgsz, --cache), or give the search more budget",
                    style="bold yellow",
                )
            )
        parts.append(Text(f"picked: {o.pick_reason}", style="dim"))
    elif o.baseline and not o.baseline.ok:
        parts.append(Text(f"baseline probe: {o.baseline.status}: {o.baseline.reason}", style="yellow"))
    if o.drift is not None:
        parts.append(Text(f"baseline measured again at the end: {o.drift:+.1%} images/s (machine drift)", style="dim"))
    states: dict[str, int] = {}
    for r in o.trials:
        key = r.status if r.state == "COMPLETE" and not r.feasible else r.state.lower()
        states[key] = states.get(key, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(states.items()))
    parts.append(Text(f"{len(o.trials)} trials in the study ({summary}); {fmt_s(o.elapsed_s)} this run", style="dim"))
    if o.stop_reason:
        parts.append(Text(f"stopped: {o.stop_reason}", style="dim"))
    for n in o.notes:
        parts.append(Text(f"note: {n}", style="dim"))
    parts.append(Text(f"study {o.study} in {o.storage}", style="dim"))
    if profile_path:
        parts.append(
            Text(
                f"profile: {profile_path}  (train it: autotune train --profile {profile_path}, or yolo cfg=...)",
                style="bold",
            )
        )
    return Group(*parts)


def report_view(d: ReportData, written: list[str]) -> Group:
    """The report's short summary: the headline, the factor table, the interaction, the files."""
    from autotune.report.documents import FACTOR_HEAD, factor_cells, fmt_x, headline

    t = Table(title=f"Speedup breakdown: {d.study}", title_justify="left")
    keep = (0, 1, 3, 4, 5)  # the story's wording is in report.md; the terminal keeps the numbers
    for i in keep:
        t.add_column(FACTOR_HEAD[i], overflow="fold")
    for r in d.factors:
        cells = factor_cells(r)
        t.add_row(*(cells[i] for i in keep))
    t.add_row("product", "", fmt_x(d.naive_product), fmt_x(d.measured_product), "", style="bold")
    t.add_row("end to end", "", "", f"{d.end_to_end:.2f}x [{d.end_to_end_low:.2f}-{d.end_to_end_high:.2f}]", "")
    t.add_row("interaction", "", "", fmt_x(d.interaction), "")
    parts: list[Any] = [Text(headline(d), style="bold"), t, Text(d.interaction_text)]
    if d.missing:
        parts.append(Text(f"not measured yet: {', '.join(d.missing)} (autotune report --measure)", style="yellow"))
    parts.append(Text("written: " + ", ".join(written), style="dim"))
    return Group(*parts)


# -- autotune train ------------------------------------------------------------------------------------------------


def _sec(s: float | None) -> str:
    """Seconds as the epoch lines print them: '412 s', '3.4 s'; minutes and hours past 10 minutes."""
    if s is None:
        return "n/a"
    if s >= 600:
        return fmt_s(s)
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def _pct(e: float | None) -> str:
    return "" if e is None else f", {e:+.1%}"


def train_epoch_line(r: EpochRecord) -> str:
    """One line per epoch: 'epoch 3/50  train 412 s (predicted 398 s, +3.5%)  val 31 s (predicted 29 s)  123.4
    images/s  [mosaic]'."""
    width = len(str(r.epochs))
    parts = [f"epoch {r.epoch:>{width}}/{r.epochs}"]
    train = f"train {_sec(r.train_s)}"
    if r.predicted_train_s:
        train += f" (predicted {_sec(r.predicted_train_s)}{_pct(r.train_error)})"
    parts.append(train)
    if r.val_s is not None:
        val = f"val {_sec(r.val_s)}"
        if r.predicted_val_s:
            val += f" (predicted {_sec(r.predicted_val_s)})"
        parts.append(val)
    parts.append(f"{r.images_per_s:.1f} images/s")
    m = headline_metrics(r.metrics)
    if "mAP50-95" in m:
        parts.append(f"mAP50-95 {m['mAP50-95']:.3f}")
    label = r.phase or ("mosaic" if r.mosaic else "no mosaic" if r.mosaic is False else "")
    return "  ".join(parts) + (f"  [{label}]" if label else "")


def train_off_warning(r: EpochRecord, causes: list[str]) -> str:
    """The warning for an epoch whose training was more than the tolerance off its prediction."""
    e = r.train_error or 0.0
    side = "slower" if e > 0 else "faster"
    return f"epoch {r.epoch}: training {abs(e):.0%} {side} than predicted; likely: " + "; ".join(causes)


def train_prediction_lines(p: RunPrediction, setup_s: float) -> list[str]:
    """The plan before the first epoch: setup, then runs of epochs with the same phase, and the total."""
    lines = [
        f"setup {_sec(setup_s)} (predicted: cache build {_sec(p.setup_s)}; model build and dataset scan not measured)"
    ]
    groups: list[list[EpochPlan]] = []
    for e in p.epochs:
        if groups and groups[-1][-1].phase == e.phase and groups[-1][-1].val_s == e.val_s:
            groups[-1].append(e)
        else:
            groups.append([e])
    for g in groups:
        span = f"epoch {g[0].epoch}" if len(g) == 1 else f"epochs {g[0].epoch}-{g[-1].epoch}"
        train = sum(e.train_s for e in g) / len(g)
        steps = sum(e.steps for e in g) / len(g)
        each = "" if len(g) == 1 else " each"
        val = f" + val {_sec(g[0].val_s)}" if g[0].val_s is not None else ""
        lines.append(f"  {span} [{g[0].phase}]: train {_sec(train)}{val}{each} ({steps:.0f} optimizer steps)")
    if p.final_val_s is not None:
        lines.append(f"  final validation of best.pt {_sec(p.final_val_s)}")
    n = len(p.epochs)
    lines.append(f"predicted: {fmt_s(p.total_s)} for {n} epoch{'s' if n != 1 else ''}")
    lines += [f"note: {n}" for n in p.notes]
    return lines


def train_summary(run: TrainRun) -> str:
    """The end: epochs done, total time against the prediction for those epochs, and the final metrics."""
    done = len(run.records)
    parts = [f"{run.status}: {done}/{run.epochs} epochs in {fmt_s(run.actual_s)}"]
    if run.predicted_s:
        err = relative_error(run.predicted_parts_s, run.predicted_s)
        parts.append(
            f"predicted {fmt_s(run.predicted_s)} for what took {fmt_s(run.predicted_parts_s)}{_pct(err)}, "
            f"plus {fmt_s(run.unpredicted_s)} nothing predicts (model build, dataset scan, checkpoints)"
        )
    metrics = headline_metrics(run.final_metrics or (run.records[-1].metrics if run.records else {}))
    if metrics:
        parts.append("  ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k in ("mAP50", "mAP50-95")))
    parts.append(f"run folder {run.save_dir}")
    return "; ".join(parts)


# -- small pieces for the CLI ---------------------------------------------------------------------------------------


def beat_text(what: str, beat: dict[str, Any]) -> str:
    """A probe's heartbeat as a status line: 'probing batch=16 ...: measure iteration 12, 0.41 s/iter'."""
    phase = beat.get("phase", "")
    if "iter" in beat:
        return f"{what}: {phase} iteration {beat['iter']}, {beat.get('iter_s', 0.0):.2f} s/iter"
    return f"{what}: {phase}..."


def _some(paths: tuple[str, ...], most: int = 10) -> str:
    """The first few paths, and how many more."""
    return ", ".join(paths[:most]) + (f" and {len(paths) - most} more" if len(paths) > most else "")


def resize_lines(result: Any, loaders: dict[str, Any], config: Any) -> list[tuple[str, str | None]]:
    """`autotune resize`'s summary lines (text, style): skipped and full-size images, the copy, loader-only rates."""
    out: list[tuple[str, str | None]] = []
    if result.corrupt:
        out.append((f"warning: skipped {len(result.corrupt)} unreadable image(s): {_some(result.corrupt)}", "yellow"))
    if result.kept:
        out.append(
            (f"warning: {len(result.kept)} image(s) copied at full size (format not writable): {_some(result.kept)}",
             "yellow")
        )  # fmt: skip
    ratio = result.source_bytes / result.copy_bytes if result.copy_bytes else float("inf")
    out.append(
        (
            f"{result.images} images at imgsz {result.imgsz}: {result.resized} resized, {result.as_is} copied as they "
            f"are, {result.already} already there; {result.seconds:.1f} s on {result.processes} process(es); image "
            f"bytes {fmt_bytes(result.source_bytes)} -> {fmt_bytes(result.copy_bytes)} ({ratio:.1f}x smaller); "
            f"{result.out}",
            None,
        )
    )
    for name, r in loaders.items():
        said = f"{r.images_per_s:,.1f} images/s" if r.images_per_s else f"{r.status}: {r.reason}"
        out.append((f"loader-only, {name}: {said} ({config.label()})", None))
    rates = {k: r.images_per_s for k, r in loaders.items()}
    if rates.get("original") and rates.get("resized"):
        out.append((f"resized / original: {rates['resized'] / rates['original']:.2f}x", None))
    return out


class TrainPrinter:
    """`autotune train`'s events as lines: the prediction, each epoch against it, warnings, the final validation.

    `out` prints to stdout (the run's record), `say(text, style)` to stderr (notes and warnings)."""

    def __init__(self, out: Any, say: Any) -> None:
        self.out, self.say = out, say

    def note(self, text: str) -> None:
        self.say(text, "yellow" if text.startswith("warning:") else "dim")

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "start":
            if data["prediction"] is not None:
                for line in train_prediction_lines(data["prediction"], data["setup_s"]):
                    self.out(line, style="dim" if line.startswith(("  ", "note")) else None)
            else:
                self.out(f"setup {data['setup_s']:.0f} s; no prediction (nothing measured)")
        elif kind == "epoch":
            self.out(train_epoch_line(data["record"]), style="bold")
            if data["causes"]:
                self.say(f"warning: {train_off_warning(data['record'], data['causes'])}", "yellow")
        elif kind == "final":
            run = data["run"]
            predicted = f" (predicted {run.predicted_final_val_s:.1f} s)" if run.predicted_final_val_s else ""
            self.out(f"final validation of best.pt {run.final_val_s:.1f} s{predicted}")
        elif kind == "warning":
            self.say(f"warning: {data['text']}", "yellow")
