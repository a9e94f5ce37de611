"""`autotune profile`'s files: profile.json and its charts (drawn from the plain data of a Profile)."""

from __future__ import annotations

import json
from pathlib import Path

from autotune.files import atomic_write
from autotune.measure.profile import Profile
from autotune.report import charts


def save(p: Profile, folder: Path) -> list[Path]:
    """Write profile.json and the charts into folder; return the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "profile.json", json.dumps(p.to_dict(), indent=1))
    written = [folder / "profile.json"]
    t = p.probe.timings
    if t.get("compute_s"):
        n = len(t["compute_s"])
        steps = [0.0] * n
        for i, s in zip(t["step_iters"], t["step_s"], strict=True):
            if i < n:
                steps[i] += s
        written.append(
            charts.iteration_bars(t["data_wait_s"], t["compute_s"], steps, t["warmup"] or 0, folder / "iterations.png")
        )
    ok = [s for s in p.scaling if s.status == "ok" and s.images_per_s]
    if ok:
        e2e = p.probe.stats.images_per_s if p.probe.stats else None
        written.append(
            charts.worker_scaling(
                [s.workers for s in ok],
                [s.images_per_s for s in ok],
                e2e,
                p.compute_only_ips,
                folder / "workers.png",
            )
        )
    if p.cache:
        labels = [f"{r.mode} ({r.state})" for r in p.cache.reads]
        written.append(charts.cache_bars(labels, [r.images_per_s for r in p.cache.reads], folder / "cache.png"))
    return written
