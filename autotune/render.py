"""Rich renderings of probe results. They only draw: every number comes from the result."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from autotune.probe import ProbeResult

STATUS_STYLE = {"ok": "bold green", "oom": "bold red", "over_limit": "bold red", "timeout": "bold yellow"}


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def fmt_s(s: float | None) -> str:
    if s is None:
        return "n/a"
    if s >= 3600:
        return f"{s / 3600:.2f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s * 1000:.1f} ms"


def _kv(title: str) -> Table:
    t = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    t.add_column(style="dim")
    t.add_column()
    return t


def probe_view(r: ProbeResult) -> Group:
    """The whole probe result: status first, then throughput, settings, memory, cache and files."""
    parts: list[Any] = []
    head = Text()
    head.append(f"probe {r.status}", style=STATUS_STYLE.get(r.status, "bold red"))
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

    if r.cache and r.cache.mode != "none":
        c = r.cache
        t = _kv(f"Cache ({c.mode}) one-time cost")
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
