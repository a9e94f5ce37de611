"""The terminal view of `autotune profile`: the verdict, the three ceilings, worker scaling, the cache bench,
utilisation and py-spy. It only draws the Profile it is given."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from autotune.measure.profile import Profile, saturation
from autotune.report.terminal import kv_table
from autotune.units import fmt_bytes, fmt_s


def profile_view(p: Profile, written: list[str]) -> Group:
    """Verdict first, then the three ceilings, worker scaling, cache bench, utilisation and py-spy."""
    parts: list[Any] = []
    for section in (_verdict, _scaling, _cache, _utilisation, _py_spy):
        parts += section(p)
    parts += [Text(f"note: {n}", style="dim") for n in p.notes]
    parts += [Text(f"warning: {w}", style="yellow") for w in p.probe.warnings]
    if written:
        parts.append(Text(f"written: {', '.join(written)}", style="dim"))
    return Group(*parts)


def _verdict(p: Profile) -> list[Any]:
    d = p.diagnosis
    if d is None:
        return [Text(f"no verdict: the end-to-end probe ended {p.probe.status}: {p.probe.reason}", style="bold red")]
    style = {"data-bound": "bold yellow", "compute-bound": "bold green"}.get(d.verdict, "bold cyan")
    head = Text()
    head.append(d.verdict, style=style)
    head.append(f": {d.reason}")
    t = kv_table("Throughput ceilings (images/s)")
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
    return [head, t]


def _scaling(p: Profile) -> list[Any]:
    if not p.scaling:
        return []
    t = Table(title="Loader-only worker scaling", title_justify="left", box=None, padding=(0, 2))
    t.add_column("workers", justify="right")
    t.add_column("images/s", justify="right")
    t.add_column("")
    for s in p.scaling:
        t.add_row(str(s.workers), f"{s.images_per_s:.1f}" if s.images_per_s else "-", s.reason or s.status)
    out: list[Any] = [t]
    sat = saturation(p.scaling)
    if sat is not None:
        out.append(Text(f"saturates at {sat} workers (within 10% of the best loader-only rate)", style="dim"))
    return out


def _cache(p: Profile) -> list[Any]:
    if not p.cache:
        return [Text(f"cache bench failed: {p.cache_error}", style="red")] if p.cache_error else []
    c = p.cache
    reads = Table(
        title=f"Image access, one worker, imgsz {c.imgsz} ({c.sample_images} images)",
        title_justify="left",
        box=None,
        padding=(0, 2),
    )
    for col, justify in (("cache", "left"), ("state", "left"), ("ms/image", "right"), ("images/s", "right")):
        reads.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in c.reads:
        reads.add_row(r.mode, r.state, f"{r.per_image_s * 1000:.2f}", f"{r.images_per_s:,.0f}")
    costs = Table(title="One-time cache cost, whole dataset", title_justify="left", box=None, padding=(0, 2))
    for col in ("cache", "build", "size", "available", "fits", "pays off after"):
        costs.add_column(col)
    advice = {a.mode: a for a in p.cache_advice}
    for b in c.builds:
        a = advice.get(b.mode)
        pays = "n/a" if a is None else ("never" if a.break_even_epochs is None else f"{a.break_even_epochs:.1f} epochs")
        fits = "yes" if b.fits else "[red]no[/red]"
        costs.add_row(b.mode, fmt_s(b.full_s), fmt_bytes(b.full_bytes), fmt_bytes(b.available_bytes), fits, pays)
    out: list[Any] = [
        reads,
        costs,
        Text(
            "pays off after: one-time build / (read time saved per image x training images), "
            "if the loader is what limits the run",
            style="dim",
        ),
    ]
    if c.read("resized", "warm") is not None:
        out.append(
            Text(
                f"resized: the same images pre-resized to {c.imgsz} px once (autotune resize --imgsz {c.imgsz}), "
                "its build on every core",
                style="dim",
            )
        )
    if p.page_cache_note:
        out.append(Text(p.page_cache_note, style="dim"))
    return out


def _utilisation(p: Profile) -> list[Any]:
    util = p.probe.extras.get("utilisation")
    if not util:
        return []
    t = kv_table("Utilisation during the window")
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
    return [t]


def _py_spy(p: Profile) -> list[Any]:
    spy = p.probe.extras.get("py_spy")
    if not spy:
        return []
    if not spy.get("available") or not spy.get("top"):
        return [Text(f"py-spy: {spy.get('message') or 'no samples recorded'}", style="yellow")]
    t = Table(title="Loader workers: top functions by own time (py-spy)", title_justify="left", box=None)
    t.add_column("share", justify="right")
    t.add_column("function")
    t.add_column("where", style="dim")
    for f in spy["top"]:
        t.add_row(f"{f['share']:.0%}", f["function"], f["location"])
    return [t]
