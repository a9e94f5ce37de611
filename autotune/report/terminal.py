"""Rich renderings for the terminal: probe results, profiles, the search (live and done), reports, training runs.
They only draw: every number comes from the data they are given."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from autotune.measure.stats import mean
from autotune.records.config import accumulate
from autotune.records.probe import IterStats, ProbeResult
from autotune.records.search import RANK_WORDS
from autotune.report.compiling import compile_summaries, compile_words
from autotune.report.data import ReportData
from autotune.report.validation import validation_words
from autotune.search.settings import SearchOutcome
from autotune.search.sidebyside import SideBySide
from autotune.status import terminal_style
from autotune.units import fmt_bytes, fmt_s


def kv_table(title: str) -> Table:
    t = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    t.add_column(style="dim")
    t.add_column()
    return t


def probe_view(r: ProbeResult) -> Group:
    """The whole probe result: status first, then throughput, settings, memory, cache and files."""
    head = Text()
    head.append(f"probe {r.status}", style=terminal_style(r.status))
    if r.reason:
        head.append(f": {r.reason}")
    parts: list[Any] = [head]
    for section in (_throughput, _settings, _memory, _one_time_costs, _files):
        parts += section(r)
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
    parts += [Text(f"warning: {w}", style="yellow") for w in r.warnings]
    if r.log_path:
        parts.append(Text(f"log: {r.log_path}", style="dim"))
    return Group(*parts)


def _throughput(r: ProbeResult) -> list[Any]:
    if not r.stats:
        return []
    s = r.stats
    t = kv_table("Throughput")
    t.add_row("images/s", f"[bold]{s.images_per_s:.1f}[/bold]  ({window_words(s)})")
    queue = queue_words(s)
    if queue:
        t.add_row("loader queue", queue)
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
    settled = "settled" if r.timings.get("settled") else "did not settle"
    t.add_row("warm-up discarded", f"{r.timings.get('warmup')} iterations ({settled})")
    return [t]


def window_words(s: IterStats) -> str:
    """'24 iterations, 384 images in 2.41 s, mean +-1.2%': what the rate is a mean of, and how sure it is."""
    size = f"{s.n} iterations" + (f", {s.images} images in {fmt_s(s.window_s)}" if s.window_s else "")
    return size + (f", mean +-{s.mean_rel_se:.1%}" if s.mean_rel_se is not None else "")


def queue_words(s: IterStats) -> str | None:
    """How many batches the loader had ready when the window opened and closed, and what it produced meanwhile."""
    if s.queue_start is None or s.queue_end is None or s.produced is None:
        return None
    words = f"{s.queue_start} -> {s.queue_end} batches ready; {s.produced} produced in the window"
    if s.produced < s.n:
        words += f" of {s.n} consumed: rate set by the loader's pace"
    return words


def _settings(r: ProbeResult) -> list[Any]:
    if not r.effective:
        return []
    t = Table(title="Requested vs effective", title_justify="left", box=None, padding=(0, 2))
    t.add_column("setting", style="dim")
    t.add_column("requested")
    t.add_column("effective")
    q, e = r.requested, r.effective
    rows = [
        ("batch", q.get("batch"), e.get("batch")),
        ("workers", q.get("workers"), e.get("workers")),
        ("loader processes", q.get("workers"), e.get("loader_processes")),
        ("cache", q.get("cache"), e.get("cache")),
        ("imgsz", q.get("imgsz"), e.get("imgsz")),
        ("AMP", q.get("amp"), e.get("amp")),
        ("accumulate", accumulate(q.get("nbs", 64), q.get("batch", 1)), e.get("accumulate")),
        ("optimizer", q.get("optimizer"), e.get("optimizer")),
        ("device", q.get("device"), e.get("device")),
    ]
    for name, req, got in rows:
        style = "" if str(req) == str(got) or name in ("AMP", "optimizer", "device") else "yellow"
        t.add_row(name, str(req), Text(str(got), style=style))
    out: list[Any] = [t]
    if e.get("optimizer_reason"):
        out.append(Text(f"optimizer: {e['optimizer_reason']}", style="dim"))
    return out


def _memory(r: ProbeResult) -> list[Any]:
    if not r.memory:
        return []
    m = r.memory
    t = kv_table("Memory")
    t.add_row(f"peak host ({m.host_kind.upper()})", f"{fmt_bytes(m.peak_host_bytes)} (main process + loader workers)")
    if m.host_limit_bytes:
        t.add_row("host limit", fmt_bytes(m.host_limit_bytes))
    t.add_row("peak GPU reserved", fmt_bytes(m.peak_gpu_reserved_bytes) if m.peak_gpu_reserved_bytes else "n/a")
    if m.gpu_limit_bytes:
        t.add_row("GPU limit (enforced)", fmt_bytes(m.gpu_limit_bytes))
    if m.val_batch:
        peak = m.val_peak_gpu_bytes if m.val_peak_gpu_bytes else m.val_peak_host_bytes
        where = "GPU" if m.val_peak_gpu_bytes else "host"
        per_pass = f", {fmt_s(m.val_fixed_s)} per pass" if m.val_fixed_s is not None else ""
        t.add_row(
            f"validation batch {m.val_batch}",
            f"{fmt_s(m.val_batch_s)} compute, {fmt_s(m.val_data_s)} loading{per_pass}, "
            f"peak {fmt_bytes(peak)} ({where})",
        )
    return [t]


def _one_time_costs(r: ProbeResult) -> list[Any]:
    out = []
    for c in (r.cache, r.source_cost):
        if c is None or c.mode == "none":
            continue
        t = kv_table("Pre-resized copy: one-time cost" if c.mode == "resized" else f"Cache ({c.mode}) one-time cost")
        t.add_row("subset", f"{c.subset_images} images in {fmt_s(c.subset_s)}, {fmt_bytes(c.subset_bytes)}")
        t.add_row("whole dataset (est.)", f"{c.full_images} images: {fmt_s(c.full_s)}, {fmt_bytes(c.full_bytes)}")
        fits = {True: "yes", False: "[red]no[/red]", None: "n/a"}[c.fits]
        t.add_row("fits", f"{fits}: {c.rule}")
        out.append(t)
    cc = r.compile_cost
    if cc is not None:
        t = kv_table(f"torch.compile ({cc.mode}): one-time cost, not in the measured window")
        t.add_row("first iterations", f"compile {fmt_s(cc.compile_s)} (first iteration {fmt_s(cc.first_iter_s)})")
        if cc.short_batch:
            t.add_row("short last batch", f"{cc.short_batch} images: recompiled in {fmt_s(cc.recompile_s)}")
        t.add_row("per run", fmt_s(cc.one_time_s))
        out.append(t)
    return out


def _files(r: ProbeResult) -> list[Any]:
    if not r.files:
        return []
    f = r.files
    t = kv_table("Files")
    t.add_row("before probe", "n/a" if f.resident_before is None else f"{f.resident_before:.0%} in page cache")
    t.add_row("read at start", f"{f.read} ({f.action})")
    t.add_row("full run regime", f"{f.regime}: {f.regime_reason}")
    return [t]


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
        elif kind == "side":
            what = f"side by side, round {data['round'] + 1} ({data['role']})"
            self.running, self.beat = f"{what}: {data['config'].label()}", ""
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
        t = kv_table("autotune search")
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
    ranked = f"epoch: ranked on {RANK_WORDS.get(o.rank_on, o.rank_on)}"
    t = Table(title=f"Speed vs resolution: the fastest feasible config per image size ({ranked})", title_justify="left")
    for col in ("imgsz", "batch", "workers", "cache", "images/s", "sec/iter", "val pass", "epoch", "trial"):
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
            fmt_s(r.val_s) if r.val_s is not None else "-",
            fmt_s(r.epoch_s),
            f"{r.number}{mark}",
        )
    parts.append(t)
    for c in compile_summaries(o.trials, o.n_train, o.epochs):
        parts.append(Text(compile_words(c) + ("" if c.paired else " (not a like-for-like pair)"), style="cyan"))
    if o.winner and o.side_by_side and o.side_by_side.speedup:
        parts += side_by_side_lines(o, o.side_by_side)
    elif o.winner and o.baseline and o.baseline.stats:
        w = o.winner
        # training time per epoch on both sides (the ranked epoch may add validation; the baseline's alone is here)
        base_epoch = o.n_train / o.baseline.stats.images_per_s
        win_epoch = o.n_train / w.images_per_s if w.images_per_s else w.epoch_s or 1.0
        b = o.baseline.requested
        line = Text()
        line.append(
            f"winner (trial {w.number}): {fmt_s(win_epoch)}/epoch of training vs baseline {fmt_s(base_epoch)} "
            f"(batch={b['batch']} workers={b['workers']} imgsz={b['imgsz']} cache={b['cache']}): ",
        )
        line.append(f"{base_epoch / win_epoch:.2f}x", style="bold green")
        line.append("  (selection runs only, not measured side by side: optimistic)", style="yellow")
        parts.append(line)
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


def side_by_side_lines(o: SearchOutcome, sb: SideBySide) -> list[Any]:
    """The side-by-side block: each candidate's fresh runs, the winner's rate and the headline speedup from them."""
    assert sb.speedup is not None and o.winner is not None
    parts: list[Any] = [
        Text(f"measured side by side at the end ({sb.rounds} round(s), interleaved, order alternating):", style="bold")
    ]
    for role, config in sb.configs.items():
        rates = sb.rates.get(role, ())
        shown = ", ".join(f"{r:.1f}" for r in rates) if rates else "no ok probe"
        mark = "  <- winner" if role == sb.faster else ""
        parts.append(Text(f"  {role:<9} {config.label()}: {shown} images/s{mark}"))
    f, lo, hi, repeated = sb.speedup
    win_ips = sb.winner_ips or 0.0
    base_ips = mean(sb.rates["baseline"])
    line = Text(f"winner (trial {o.winner.number}): {win_ips:.1f} images/s, {fmt_s(o.n_train / win_ips)}/epoch vs "
                f"baseline {base_ips:.1f} images/s, {fmt_s(o.n_train / base_ips)}/epoch: ")  # fmt: skip
    line.append(f"{f:.2f}x [{lo:.2f}-{hi:.2f}]", style="bold green")
    if not repeated:
        line.append(f"  (a side measured once: interval is the noise floor, +-{sb.floor:.0%})", style="yellow")
    parts.append(line)
    sel = o.winner.images_per_s
    if sel:
        parts.append(Text(f"  the selection run had read {sel:.1f} images/s ({sel / win_ips - 1:+.0%} against these "
                          "fresh runs): the headline uses the fresh runs", style="dim"))  # fmt: skip
    w, b = sb.configs.get(sb.faster or ""), sb.configs.get("baseline")
    if w and b and w.imgsz != b.imgsz:
        parts.append(Text(f"  at imgsz {w.imgsz} vs {b.imgsz}: a smaller image is not a free win", style="yellow"))
    if f < 1:
        keep = (
            "the baseline is faster than every configuration tried: keep it, widen the space (--batch, --workers, "
            "--imgsz, --cache), or give the search more budget"
        )
        parts.append(Text(keep, style="bold yellow"))
    parts.append(Text(f"picked: {o.pick_reason}", style="dim"))
    return parts


def report_view(d: ReportData, written: list[str]) -> Group:
    """The report's short summary: the headline, the factor table, the interaction, the files."""
    from autotune.report.documents import FACTOR_HEAD, factor_cells, fmt_interval, fmt_x, headline

    t = Table(title=f"Speedup breakdown: {d.study}", title_justify="left")
    keep = (0, 1, 3, 4, 5)  # the story's wording is in report.md; the terminal keeps the numbers
    for i in keep:
        t.add_column(FACTOR_HEAD[i], overflow="fold")
    for r in d.factors:
        cells = factor_cells(r)
        t.add_row(*(cells[i] for i in keep))
    t.add_row("product", "", fmt_x(d.naive_product), fmt_interval(d.measured_product, d.measured_product_interval),
              "", style="bold")  # fmt: skip
    t.add_row("end to end", "", "", f"{d.end_to_end:.2f}x [{d.end_to_end_low:.2f}-{d.end_to_end_high:.2f}]", "")
    t.add_row("interaction", "", "", fmt_interval(d.interaction, d.interaction_interval), "")
    parts: list[Any] = [Text(headline(d), style="bold"), t, Text(d.interaction_text)]
    parts += [Text(compile_words(c), style="cyan") for c in d.compile]
    if d.validation is not None:
        parts += [Text(w, style="cyan") for w in validation_words(d.validation)[:2]]
    if d.missing:
        parts.append(Text(f"not measured yet: {', '.join(d.missing)} (autotune report --measure)", style="yellow"))
    parts.append(Text("written: " + ", ".join(written), style="dim"))
    return Group(*parts)


# -- small pieces for the CLI ---------------------------------------------------------------------------------------


def beat_text(what: str, beat: dict[str, Any]) -> str:
    """A probe's heartbeat as a status line: 'probing batch=16 ...: measure iteration 12, 0.41 s/iter'."""
    phase = beat.get("phase", "")
    if "iter" in beat:
        return f"{what}: {phase} iteration {beat['iter']}, {beat.get('iter_s', 0.0):.2f} s/iter"
    return f"{what}: {phase}..."
