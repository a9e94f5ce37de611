"""Repeatability of one probe: run the same configuration N times, side by side, and report the spread.

    python bench/probe_repeat.py --imgsz 128 --batch 8 --workers 2 --cache ram --device cpu --repeats 3

Writes a Markdown table (with the machine and the exact command) to bench/results/ and prints it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from autotune.data.demo import DemoSpec, write_demo_dataset
from autotune.measure.machine import fingerprint
from autotune.measure.probe import probe
from autotune.measure.stats import mean, relative_spread
from autotune.records.config import ProbeOptions, TrainConfig, Workload


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data.yaml; default: the embedded workload")
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", default="ram")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    data = a.data or str(write_demo_dataset(DemoSpec()).data_yaml)
    config = TrainConfig(batch=a.batch, workers=a.workers, imgsz=a.imgsz, cache=a.cache, device=a.device)
    rates, rows = [], []
    for k in range(a.repeats):
        r = probe(config, Workload(data=data), ProbeOptions(iters=a.iters))
        if not r.ok or r.stats is None:
            print(f"run {k + 1}: {r.status}: {r.reason}", file=sys.stderr)
            return 1
        rates.append(r.stats.images_per_s)
        rows.append(
            f"| {k + 1} | {r.stats.images_per_s:.1f} | {r.stats.sec_per_iter_median * 1000:.0f} "
            f"[{r.stats.sec_per_iter_q1 * 1000:.0f}-{r.stats.sec_per_iter_q3 * 1000:.0f}] | "
            f"{r.stats.stall_fraction:.1%} | {r.timings['warmup']} | {r.files.read if r.files else 'n/a'} |"
        )
        print(rows[-1], flush=True)
    spread = relative_spread(rates)
    lines = [
        f"# Probe repeatability ({dt.date.today().isoformat()})",
        "",
        f"Command: `python bench/probe_repeat.py {' '.join(sys.argv[1:])}`",
        f"Machine: {fingerprint().summary()}",
        f"Config: {config.label()} device={config.device}, {a.iters} measured iterations",
        "",
        "| run | images/s | ms/iter median [IQR] | data stall | warm-up iters | files |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Mean {mean(rates):.1f} images/s; spread (max - min) / mean = **{spread:.1%}**; "
        f"max/min ratio {max(rates) / min(rates):.3f}.",
    ]
    text = "\n".join(lines) + "\n"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"probe_repeat_{config.device}_{config.imgsz}_{config.batch}_{config.workers}_{config.cache}.md"
    (out / name).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
