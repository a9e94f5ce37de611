"""PNG charts (matplotlib, no display, no fonts fetched). Each function only draws the plain data it is given."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt

from autotune.files import temp_name


def _save(fig: Any, path: Path) -> None:
    """A PNG written whole or not at all (a killed run leaves no half chart), and the figure freed."""
    tmp = temp_name(path)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)


def iteration_bars(
    data_wait_s: Sequence[float], compute_s: Sequence[float], step_s_by_iter: Sequence[float], warmup: int, path: Path
) -> Path:
    """Per-iteration stacked bars: data wait, compute, optimizer step; the discarded warm-up shaded."""
    n = len(compute_s)
    x = list(range(n))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.bar(x, compute_s, color="#4c72b0", label="compute (forward + backward)")
    ax.bar(x, step_s_by_iter, bottom=compute_s, color="#55a868", label="optimizer step")
    tops = [c + s for c, s in zip(compute_s, step_s_by_iter, strict=True)]
    ax.bar(x, data_wait_s, bottom=tops, color="#dd8452", label="data wait")
    if warmup:
        ax.axvspan(-0.5, warmup - 0.5, color="grey", alpha=0.15, label="warm-up (discarded)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("seconds")
    ax.set_title("Where each training iteration's time goes")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    _save(fig, path)
    return path


def worker_scaling(
    workers: Sequence[int],
    images_per_s: Sequence[float],
    end_to_end_ips: float | None,
    compute_ips: float | None,
    path: Path,
) -> Path:
    """Loader-only images/s against loader workers, with the end-to-end rate and the model's ceiling."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(workers, images_per_s, marker="o", color="#dd8452", label="loader only")
    if end_to_end_ips:
        ax.axhline(end_to_end_ips, color="#4c72b0", linestyle="--", label=f"end to end ({end_to_end_ips:.0f})")
    if compute_ips:
        ax.axhline(compute_ips, color="#55a868", linestyle=":", label=f"compute only ({compute_ips:.0f})")
    ax.set_xticks(list(workers))
    ax.set_xlabel("data loader workers")
    ax.set_ylabel("images / s")
    ax.set_ylim(bottom=0)
    ax.set_title("How far more workers take the loader")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path


def cache_bars(labels: Sequence[str], images_per_s: Sequence[float], path: Path) -> Path:
    """Images/s of one worker reading and resizing images, per cache mode and page-cache state (log scale)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = ["#c44e52" if "cold" in lb else "#8172b2" if "ram" in lb else "#ccb974" for lb in labels]
    bars = ax.bar(labels, images_per_s, color=colors)
    ax.set_yscale("log")
    for b, v in zip(bars, images_per_s, strict=True):
        ax.annotate(f"{v:,.0f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("images / s, one worker (log scale)")
    ax.set_title("Image access by cache mode")
    fig.tight_layout()
    _save(fig, path)
    return path


def waterfall(labels: Sequence[str], starts_s: Sequence[float], ends_s: Sequence[float], path: Path) -> Path:
    """Epoch time from the baseline through each measured factor and the interaction to the winner."""
    fig, ax = plt.subplots(figsize=(8, 4))
    names = ["baseline", *labels, "winner"]
    x = list(range(len(names)))
    ax.bar(0, starts_s[0], color="#8c8c8c")
    for i, (a, b) in enumerate(zip(starts_s, ends_s, strict=True), start=1):
        color = "#55a868" if b < a else "#c44e52"
        ax.bar(i, a - b, bottom=b, color=color)
        ax.annotate(f"{a / b:.2f}x", (i, max(a, b)), ha="center", va="bottom", fontsize=8)
    ax.bar(len(names) - 1, ends_s[-1], color="#4c72b0")
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylabel("projected epoch time, s")
    ax.set_title("From the baseline to the winner: measured factors, then their interaction")
    fig.tight_layout()
    _save(fig, path)
    return path


def naive_vs_measured(
    levers: Sequence[str],
    naive: Sequence[float | None],
    measured: Sequence[float | None],
    low: Sequence[float | None],
    high: Sequence[float | None],
    path: Path,
) -> Path:
    """Per lever: the story's factor beside the measured one (with its interval); 1x marked."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    x = list(range(len(levers)))
    w = 0.38
    ax.bar([i - w / 2 for i in x], [v or 0 for v in naive], w, color="#ccb974", label="the story's rule")
    m = [v or 0 for v in measured]
    err = [[max(v - (lo or v), 0) for v, lo in zip(m, low, strict=True)],
           [max((hi or v) - v, 0) for v, hi in zip(m, high, strict=True)]]  # fmt: skip
    ax.bar([i + w / 2 for i in x], m, w, yerr=err, capsize=4, color="#4c72b0", label="measured here")
    for i, v in enumerate(measured):
        if v is None:
            ax.annotate("not measured", (i + w / 2, 0.02), ha="center", va="bottom", fontsize=7, rotation=90)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(x, levers)
    ax.set_ylabel("speedup factor (x)")
    ax.set_title("Naive vs measured factor per lever")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path


def throughput_vs_batch(
    series: dict[int, tuple[list[int], list[float]]],
    memory: dict[int, tuple[list[int], list[float]]],
    failed: dict[int, list[int]],
    limit_gib: float | None,
    memory_label: str,
    path: Path,
) -> Path:
    """Images/s against batch for each image size (best over workers/cache), and peak memory with the limit."""
    fig, (ax, mx) = plt.subplots(1, 2, figsize=(11, 4))
    for size in sorted(set(series) | set(failed)):
        b, ips = series.get(size, ([], []))
        (line,) = ax.plot(b, ips, marker="o", label=f"imgsz {size}")
        if size in memory:
            mb, gib = memory[size]
            mx.plot(mb, gib, marker="o", color=line.get_color(), label=f"imgsz {size}")
        if failed.get(size):
            mx.scatter(failed[size], [limit_gib or 0] * len(failed[size]), marker="x", color=line.get_color(), s=60)
    ax.set_xlabel("batch")
    ax.set_ylabel("images / s (best config at that batch)")
    ax.set_ylim(bottom=0)
    ax.set_title("Throughput vs batch")
    ax.legend(fontsize=8)
    if limit_gib:
        mx.axhline(limit_gib, color="#c44e52", linestyle="--", label=f"limit {limit_gib:.1f} GiB")
    mx.set_xlabel("batch")
    mx.set_ylabel(f"peak {memory_label}, GiB")
    mx.set_title("Memory vs batch (x: over the limit or out of memory)")
    mx.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path


def speed_vs_resolution(imgsz: Sequence[int], images_per_s: Sequence[float], labels: Sequence[str], path: Path) -> Path:
    """The front: the fastest feasible config at each image size."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(imgsz, images_per_s, marker="o", color="#4c72b0")
    for x, y, lb in zip(imgsz, images_per_s, labels, strict=True):
        ax.annotate(lb, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xticks(list(imgsz))
    ax.set_xlabel("imgsz (px)")
    ax.set_ylabel("images / s")
    ax.set_ylim(bottom=0)
    ax.set_title("Speed vs resolution: the fastest feasible config per image size")
    fig.tight_layout()
    _save(fig, path)
    return path


def optuna_figure(ax: object, path: Path) -> Path:
    """Save a figure that Optuna's matplotlib plotting drew (it returns the Axes)."""
    fig = ax.get_figure() if hasattr(ax, "get_figure") else ax[0].get_figure()  # type: ignore[index,union-attr]
    fig.set_size_inches(7.5, 4.2)
    fig.tight_layout()
    _save(fig, path)
    return path
