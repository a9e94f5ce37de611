"""PNG charts (matplotlib, no display, no fonts fetched). Each function only draws the plain data it is given."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt


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
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
