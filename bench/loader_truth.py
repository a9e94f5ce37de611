"""Loader truth: does a probe read what a long training run sustains, where the loader is the bottleneck?

    python bench/loader_truth.py             # ~40 min on 2 cores; writes bench/results/loader_truth_cpu.{md,json}
    python bench/loader_truth.py --quick     # a smoke run of the script itself (small data, short long runs)

For each configuration (workers 0, 1, 2; cache none, and ram where it changes the loader) on two workloads (the
loader-bound demo variant, 3840x2160 frames at imgsz 64, and the default workload), three kinds of measurement:
- the probe (autotune's own measurement, default options);
- the probe with a simulated slow first iteration (8 s, as a GPU's first CUDA iterations): the workers fill their
  prefetch queue meanwhile, the condition that hid a slow loader on an H100. The table also shows what the window
  before issue 14 (warm-up, then the next `iters` iterations, whatever the queue held) reads from the same runs;
- a long run: Ultralytics' own training loop on a data set large enough that no image is read twice, timed by a
  plain stopwatch at every batch start and end (not the probe's code): `--skip` iterations are dropped so the queue
  is in steady state, then `--iters` full batches of one epoch are timed.
This VM's speed drifts by tens of percent within minutes (one earlier run of this script saw the same probe read 29
and 44 images/s six minutes apart), so each probe kind runs twice, flanking the long run symmetrically (probe,
slow-start probe, long run, slow-start probe, probe; the two probe kinds swap places from row to row): a drift that
is linear over the row cancels in the mean of the two. The probe should be within 10% of the long run, and
loader-bound configurations should read loader-bound.
More workers than this VM's 2 cores are left out: there they starve the model of CPU (8 workers on 2 cores read
4.1 images/s against 7.9 with none), which is not the GPU's condition; bench/gpu_check.py compares 1 and 8
workers on a GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DELAY_S = 8.0


@dataclass(frozen=True)
class Case:
    workload: str  # "loader-bound" | "default"
    imgsz: int
    batch: int
    workers: int
    cache: str = "none"

    def label(self) -> str:
        return f"{self.workload} imgsz {self.imgsz} batch {self.batch} workers {self.workers} cache {self.cache}"


def cases() -> list[Case]:
    lb = [Case("loader-bound", 64, 4, w) for w in (0, 1, 2)]
    lb += [Case("loader-bound", 64, 4, 1, "ram")]
    return lb + [Case("default", 128, 8, w) for w in (0, 1, 2)]


ORDERS = (("probe", "delayed", "long", "delayed", "probe"), ("delayed", "probe", "long", "probe", "delayed"))


# -- the long run: Ultralytics' loop and a stopwatch, in its own process ---------------------------------------------


class Enough(Exception):
    pass


def long_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one epoch with Ultralytics and time every batch with a plain stopwatch; stop after skip + iters."""
    from ultralytics import YOLO

    import autotune  # noqa: F401  (Ultralytics' offline switches, before it is imported)
    from autotune.measure.ultralytics_glue import patch_downloads

    patch_downloads()
    starts: list[float] = []
    ends: list[float] = []
    need = spec["skip"] + spec["iters"]

    def restore_workers(trainer: Any) -> None:
        trainer.args.workers = spec["workers"]  # Ultralytics forces 0 on a CPU; a GPU run keeps its workers

    def batch_start(trainer: Any) -> None:
        starts.append(time.perf_counter())

    def batch_end(trainer: Any) -> None:
        ends.append(time.perf_counter())
        if len(ends) >= need:
            raise Enough

    model = YOLO(spec["model"])
    model.add_callback("on_pretrain_routine_start", restore_workers)
    model.add_callback("on_train_batch_start", batch_start)
    model.add_callback("on_train_batch_end", batch_end)
    workers_seen: list[int] = []
    model.add_callback("on_train_epoch_start", lambda tr: workers_seen.append(tr.train_loader.num_workers))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            model.train(data=spec["data"], epochs=1, batch=spec["batch"], imgsz=spec["imgsz"], workers=spec["workers"],
                        cache=False if spec["cache"] == "none" else spec["cache"], device=spec.get("device", "cpu"),
                        optimizer="SGD",
                        warmup_epochs=0, close_mosaic=0, val=False, plots=False, save=False, project=tmp, name="long",
                        exist_ok=True, verbose=False, seed=0)  # fmt: skip
            return {"error": f"the epoch ended after {len(ends)} batches, {need} needed"}
        except Enough:
            pass
    s, e = spec["skip"], need
    seconds = ends[e - 1] - ends[s - 1]  # from the end of batch skip-1 to the end of the last: e - s whole batches
    waits = sum(starts[i] - ends[i - 1] for i in range(s, e))
    return {"images_per_s": spec["batch"] * (e - s) / seconds, "stall": waits / seconds, "seconds": seconds,
            "batches": e - s, "workers": workers_seen[0] if workers_seen else None}  # fmt: skip


def run_long(
    case: Case,
    data: str,
    skip: int,
    iters: int,
    timeout_s: float,
    device: str = "cpu",
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A long run of `case` in its own process (bench/gpu_check.py runs it on a GPU too)."""
    spec = {"data": data, "model": "yolo11n.yaml", "imgsz": case.imgsz, "batch": case.batch, "workers": case.workers,
            "cache": case.cache, "skip": skip, "iters": iters, "device": device}  # fmt: skip
    cmd = [sys.executable, __file__, "--long-run", json.dumps(spec)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env or dict(os.environ), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": f"exit {p.returncode}: {p.stderr.strip().splitlines()[-1:] or ''}"}
    return json.loads(lines[-1])


# -- the probe ---------------------------------------------------------------------------------------------------


def old_window_rate(timings: dict[str, Any], iters: int, batch: int) -> float | None:
    """What the window before issue 14 read from the same iterations: the `iters` right after the warm-up."""
    w0 = timings.get("warmup")
    waits, computes, steps, at = (timings.get(k) or [] for k in ("data_wait_s", "compute_s", "step_s", "step_iters"))
    if w0 is None or len(computes) < w0 + iters:
        return None
    window = range(w0, w0 + iters)
    stepped = sum(s for s, i in zip(steps, at, strict=False) if i in window)
    seconds = sum(waits[i] + computes[i] for i in window) + stepped
    return batch * iters / seconds


def run_probe(case: Case, data: str, delay_s: float) -> dict[str, Any]:
    from autotune.measure.probe import probe
    from autotune.measure.profile import classify
    from autotune.records.config import ProbeOptions, TrainConfig, Workload

    config = TrainConfig(batch=case.batch, workers=case.workers, imgsz=case.imgsz, cache=case.cache, device="cpu",
                         optimizer="SGD")  # fmt: skip
    options = ProbeOptions(first_iter_delay_s=delay_s)
    r = probe(config, Workload(data=data, model="yolo11n.yaml"), options)
    if not r.ok or r.stats is None:
        return {"error": f"{r.status}: {r.reason}"}
    s = r.stats
    return {"images_per_s": s.images_per_s, "stall": s.stall_fraction, "n": s.n, "window_s": s.window_s,
            "queue": [s.queue_start, s.queue_end], "produced": s.produced, "warmup": r.timings.get("warmup"),
            "old_images_per_s": old_window_rate(r.timings, options.iters, case.batch),
            "verdict": classify(s.stall_fraction, s.images_per_s, None, None).verdict,
            "duration_s": r.duration_s, "warnings": list(r.warnings)}  # fmt: skip


# -- report ------------------------------------------------------------------------------------------------------


def pct(x: float | None, ref: float | None) -> str:
    return f"{x / ref - 1:+.1%}" if x and ref else "-"


def mean_of(runs: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return sum(vals) / len(vals) if len(vals) == len(runs) and vals else None


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A probe kind's two runs of a row: their mean images/s, stall and old-window rate (None if one failed)."""
    return {"images_per_s": mean_of(runs, "images_per_s"), "stall": mean_of(runs, "stall"),
            "old_images_per_s": mean_of(runs, "old_images_per_s"),
            "each": [r.get("images_per_s") for r in runs], "verdicts": [r.get("verdict", "-") for r in runs],
            "errors": [r["error"] for r in runs if "error" in r]}  # fmt: skip


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = [
        f"# Loader truth on a CPU ({meta['date']})",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}  ",
        f"Long runs: {meta['skip']} iterations dropped, then {meta['iters']} full batches timed by a plain stopwatch "
        "around Ultralytics' own loop, no image read twice. Probes: default options (20 iterations, 2 s minimum), "
        "each kind twice, flanking the long run (drift that is linear over a row cancels in their mean). "
        f"Slow start: {meta['delay_s']:g} s added to the probe's first iteration.",
        "",
        "| workload | workers | cache | long run img/s (stall) | probe img/s: runs, mean (stall) | vs long | "
        "slow-start probe: runs, mean (stall) | vs long | window before #14, slow start | vs long | verdicts |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(m: dict[str, Any]) -> str:
        if m.get("images_per_s") is None:
            return "; ".join(m.get("errors") or [m.get("error", "-")])
        runs = ", ".join(f"{x:.1f}" for x in m["each"]) + " -> " if "each" in m else ""
        return f"{runs}{m['images_per_s']:.1f} ({m['stall']:.0%})"

    worst = []
    for row in rows:
        c, lr = row["case"], row["long"]
        p, d = combine(row["probe"]), combine(row["delayed"])
        ref = lr.get("images_per_s")
        worst += [abs(m["images_per_s"] / ref - 1) for m in (p, d) if ref and m["images_per_s"]]
        old = d["old_images_per_s"]
        out.append(
            f"| {c['workload']} {c['imgsz']} px b{c['batch']} | {c['workers']} | {c['cache']} | {cell(lr)} | "
            f"{cell(p)} | {pct(p['images_per_s'], ref)} | {cell(d)} | {pct(d['images_per_s'], ref)} | "
            f"{f'{old:.1f}' if old else '-'} | {pct(old, ref)} | {', '.join(p['verdicts'] + d['verdicts'])} |"
        )
    out += ["", f"Largest probe error against its long run (means of two): **{max(worst):.1%}**." if worst else ""]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: short long runs, the workers-1 rows only")
    ap.add_argument("--skip", type=int, default=40, help="long run: iterations dropped before timing")
    ap.add_argument("--iters", type=int, default=200, help="long run: full batches timed")
    ap.add_argument("--delay", type=float, default=DELAY_S, help="simulated slow first iteration, seconds")
    ap.add_argument("--out", default=str(ROOT / "results"))
    ap.add_argument("--long-run", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.long_run:
        print(json.dumps(long_run(json.loads(a.long_run))))
        return 0
    from autotune.data.demo import DemoSpec, write_demo_dataset
    from autotune.data.demo_draw import VARIANTS
    from autotune.measure.machine import fingerprint

    todo = cases()
    if a.quick:
        a.skip, a.iters = 10, 20
        todo = [c for c in todo if c.workers == 1 and c.cache == "none"]
    # enough training images that a long run never reads one twice: (skip + iters + a full queue + 1) batches
    largest = {w: max((c.batch for c in cases() if c.workload == w), default=0) for w in VARIANTS}
    # (the full run's sizes even with --quick: the datasets are generated once and shared)
    train_needed = {w: (max(a.skip, 40) + max(a.iters, 200) + 4 * 8 + 1) * b for w, b in largest.items()}
    data = {}
    for w in {c.workload for c in todo}:
        width, height = VARIANTS[w]
        images = int(train_needed[w] / 0.8) + 2  # 20% go to val
        print(f"{w}: {images} images of {width}x{height} (generated once, then reused)", flush=True)
        data[w] = str(write_demo_dataset(DemoSpec(images=images, width=width, height=height)).data_yaml)
    rows = []
    for k, case in enumerate(todo):
        print(f"[{k + 1}/{len(todo)}] {case.label()}", flush=True)
        got: dict[str, Any] = {"probe": [], "delayed": []}
        for step in ORDERS[k % 2]:
            t0 = time.monotonic()
            if step == "long":
                got[step] = m = run_long(case, data[case.workload], a.skip, a.iters, timeout_s=1800)
            else:
                m = run_probe(case, data[case.workload], a.delay if step == "delayed" else 0.0)
                got[step].append(m)
            print(f"    {step}: {json.dumps({k2: v for k2, v in m.items() if k2 != 'warnings'})} "
                  f"({time.monotonic() - t0:.0f} s)", flush=True)  # fmt: skip
        rows.append({"case": case.__dict__, **got})
    command = "python bench/loader_truth.py " + " ".join(argv or sys.argv[1:])
    meta = {"date": dt.date.today().isoformat(), "command": command,
            "machine": fingerprint().summary(), "skip": a.skip, "iters": a.iters, "delay_s": a.delay}  # fmt: skip
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "loader_truth_cpu_quick" if a.quick else "loader_truth_cpu"
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))  # first: the raw numbers
    text = render(rows, meta)
    (out / f"{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
