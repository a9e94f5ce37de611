"""autotune's winner against Ultralytics' defaults, the story's hand recipe, AutoBatch and the grid optimum.

Everything is measured in one run on one machine with the same probe settings:
  a. Ultralytics' defaults at the baseline image size (batch 16, workers 8 capped at the CPUs, no cache);
  b. the story's hand recipe (batch 32, imgsz 416, cache ram, workers 16 capped); on a CPU the image size is
     scaled like the baseline's (416/640 of it, to a multiple of 32), and labelled so;
  c. Ultralytics' AutoBatch (batch=-1; GPU only, n/a on a CPU);
  d. autotune's winner after `autotune search` with budget B over a small space;
  e. the optimum of the exhaustive grid over the same space (the search treats batch as the range between the
     listed values; the grid probes the listed values).
The winner and the grid optimum are then measured again side by side (alternating, with repeats), so their
ratio is not drift; and a short `autotune train --best` gives the epoch-time prediction error.

    python bench/compare.py                 # the CPU-sized default (under 20 minutes on 2 cores)
    python bench/compare.py --device 0 --imgsz 320,480,640 --batch 16,32,64 --workers 4,8 --budget 10min

Writes bench/results/compare_<device>.md (machine fingerprint and the exact command) and a .json beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autotune.measure.machine import fingerprint  # noqa: E402
from autotune.measure.probe import probe  # noqa: E402
from autotune.measure.stats import mean  # noqa: E402
from autotune.records.config import ProbeOptions, TrainConfig, Workload  # noqa: E402
from autotune.records.probe import ProbeResult  # noqa: E402


@dataclass(frozen=True)
class Row:
    name: str
    config: TrainConfig | None
    images_per_s: tuple[float, ...]  # every measurement, in order
    note: str = ""

    @property
    def ips(self) -> float | None:
        return mean(self.images_per_s) if self.images_per_s else None


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def round32(x: float) -> int:
    return max(32, round(x / 32) * 32)


def measure(config: TrainConfig, workload: Workload, options: ProbeOptions, label: str) -> ProbeResult:
    t0 = time.monotonic()
    r = probe(config, workload, options)
    rate = f"{r.stats.images_per_s:.1f} images/s" if r.ok and r.stats else f"{r.status}: {r.reason[:80]}"
    print(f"[compare] {label}: {config.label()}: {rate} ({time.monotonic() - t0:.0f} s)", flush=True)
    return r


def ok_ips(r: ProbeResult) -> tuple[float, ...]:
    return (r.stats.images_per_s,) if r.ok and r.stats else ()


def run_search(args: argparse.Namespace, study: str, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    space = ["--batch", args.batch, "--workers", args.workers, "--imgsz", args.imgsz, "--cache", args.cache,
             "--source", args.source]  # fmt: skip
    data = ["--data", args.data] if args.data else []
    argv = [sys.executable, "-m", "autotune", "search", "--budget", args.budget, "--device", args.device, *space,
            "--iters", str(args.iters), "--study", study, "--json", *data]  # fmt: skip
    print(f"[compare] search: {' '.join(argv[2:])}", flush=True)
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.monotonic() - t0
    if p.returncode not in (0, 1):
        sys.exit(f"compare: the search failed (exit {p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
    return json.loads(p.stdout.strip().splitlines()[-1]), wall


def run_train(study: str, epochs: int, env: dict[str, str]) -> dict[str, Any] | str:
    """A short `autotune train --study` run of the winner: its per-epoch predicted and actual training seconds,
    read back from the study as `autotune report` reads them."""
    from autotune.report.build import train_run_row
    from autotune.search import store

    argv = [sys.executable, "-m", "autotune", "train", "--study", study, "--epochs", str(epochs)]
    print(f"[compare] train: {' '.join(argv[2:])}", flush=True)
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    print(p.stderr[-1500:], flush=True)
    if p.returncode != 0:
        return f"exit {p.returncode}: {(p.stderr.strip().splitlines() or [''])[-1][:200]}"
    runs = store.load(store.open_storage(None, create=False), study).train_runs()
    return train_run_row(runs[-1]) if runs else "no run recorded"


def ratio(a: Row, b: Row) -> str:
    if a.ips is None or b.ips is None:
        return "n/a"
    label = ""
    if a.config and b.config and a.config == b.config:
        label = " (the same configuration: a ratio off 1 is the machine's noise)"
    elif a.config and b.config and a.config.imgsz != b.config.imgsz:
        label = f" (imgsz {a.config.imgsz} vs {b.config.imgsz}: a smaller image is not a free win)"
    return f"{a.ips / b.ips:.2f}x{label}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="data.yaml; default: the embedded workload")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--budget", default="4min", help="the search's budget B")
    ap.add_argument(
        "--batch", default="8,32", help="batch values: the grid probes each, the search the range between them"
    )
    ap.add_argument("--workers", default="0,2")
    ap.add_argument("--imgsz", default="96,128")
    ap.add_argument("--cache", default="none,ram")
    ap.add_argument("--source", default="original", help="original,resized to search the pre-resized copy too")
    ap.add_argument("--baseline-imgsz", type=int, default=None, help="default: 160 on a CPU, 640 on a GPU")
    ap.add_argument("--iters", type=int, default=6, help="measured iterations per probe (as the search's)")
    ap.add_argument("--repeats", type=int, default=3, help="side-by-side repeats of the winner and grid optimum")
    ap.add_argument("--train-epochs", type=int, default=1, help="epochs of the short train --best (0: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = ap.parse_args(argv)
    t_start = time.monotonic()
    cpu = a.device == "cpu"
    from autotune.cli.base import data_yaml as _data_yaml

    workload = Workload(data=_data_yaml(a.data))
    options = ProbeOptions(iters=a.iters, warmup_max=15 if cpu else 30)
    cores = os.cpu_count() or 1
    base_size = a.baseline_imgsz or (160 if cpu else 640)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

    defaults = TrainConfig(batch=16, workers=min(8, cores), imgsz=base_size, cache="none", device=a.device)
    recipe_size = 416 if base_size == 640 else round32(base_size * 416 / 640)
    recipe = TrainConfig(batch=32, workers=min(16, cores), imgsz=recipe_size, cache="ram", device=a.device)
    rows: dict[str, Row] = {}
    r = measure(defaults, workload, options, "a. defaults")
    rows["a"] = Row("a. Ultralytics defaults", defaults, ok_ips(r), r.reason if not r.ok else "")
    r = measure(recipe, workload, options, "b. hand recipe")
    scaled = "" if recipe_size == 416 else f"imgsz 416 scaled to this baseline: {base_size} x 416/640 ~ {recipe_size}"
    rows["b"] = Row("b. the story's hand recipe", recipe, ok_ips(r), scaled if r.ok else f"{r.status}: {r.reason}")
    if cpu:
        rows["c"] = Row("c. Ultralytics AutoBatch", None, (), "n/a on a CPU (AutoBatch needs CUDA)")
    else:
        from autotune.search.autobatch import autobatch

        ab = autobatch(workload, max(ints(a.imgsz)), a.device)
        if isinstance(ab, int):
            c = defaults.with_(batch=ab, imgsz=max(ints(a.imgsz)))
            r = measure(c, workload, options, "c. AutoBatch")
            rows["c"] = Row("c. Ultralytics AutoBatch", c, ok_ips(r), "" if r.ok else f"{r.status}: {r.reason}")
        else:
            rows["c"] = Row("c. Ultralytics AutoBatch", None, (), ab)

    study = f"bench-compare-{dt.datetime.now():%Y%m%d-%H%M%S}"
    outcome, search_wall = run_search(a, study, env)
    w = outcome.get("winner")
    winner = TrainConfig.from_dict(w["config"]) if w else None
    rows["d"] = Row(f"d. autotune winner ({a.budget} search)", winner, (w["images_per_s"],) if w else ())

    grid = [
        defaults.with_(batch=b, workers=k, imgsz=s, cache=ch, source=src)
        for s, b, k, ch, src in itertools.product(
            ints(a.imgsz), ints(a.batch), ints(a.workers), a.cache.split(","), a.source.split(",")
        )
    ]
    print(f"[compare] grid: {len(grid)} configs", flush=True)
    t0 = time.monotonic()
    grid_results = [(c, measure(c, workload, options, f"grid {i + 1}/{len(grid)}")) for i, c in enumerate(grid)]
    grid_wall = time.monotonic() - t0
    feasible = [(c, r) for c, r in grid_results if r.ok and r.stats]
    best_cfg, best = max(feasible, key=lambda cr: cr[1].stats.images_per_s) if feasible else (None, None)  # type: ignore[union-attr]
    rows["e"] = Row("e. grid optimum", best_cfg, ok_ips(best) if best else ())

    # side by side, alternating: the ratio d/e from measurements taken minutes apart would carry the drift
    again: dict[str, list[float]] = {"d": [], "e": []}
    if winner and best_cfg:
        for k in range(a.repeats):
            pair = (("d", winner), ("e", best_cfg))
            for key, c in pair if k % 2 == 0 else pair[::-1]:  # alternate who goes first: no order effect
                again[key] += ok_ips(measure(c, workload, options, f"side by side {k + 1}/{a.repeats} {key}"))
    side_d = Row(rows["d"].name + ", side by side", winner, tuple(again["d"]))
    side_e = Row(rows["e"].name + ", side by side", best_cfg, tuple(again["e"]))

    train: dict[str, Any] | str = "skipped"
    if a.train_epochs and w:
        train = run_train(study, a.train_epochs, env)

    d = rows["d"]
    ratios = {
        "d/a (winner vs defaults)": ratio(side_d if side_d.ips else d, rows["a"]),
        "d/b (winner vs hand recipe)": ratio(side_d if side_d.ips else d, rows["b"]),
        "d/c (winner vs AutoBatch)": ratio(side_d if side_d.ips else d, rows["c"]),
        "d/e (winner vs grid optimum, side by side)": ratio(side_d, side_e),
    }
    total = time.monotonic() - t_start
    md = render(a, argv, rows, side_d, side_e, ratios, search_wall, grid_wall, len(grid), outcome, train, total)
    a.out.mkdir(parents=True, exist_ok=True)
    stem = a.out / f"compare_{'cpu' if cpu else 'gpu'}"
    stem.with_suffix(".md").write_text(md)
    stem.with_suffix(".json").write_text(
        json.dumps(
            {
                "rows": {
                    k: {
                        "name": v.name,
                        "config": v.config.to_dict() if v.config else None,
                        "images_per_s": v.images_per_s,
                        "note": v.note,
                    }
                    for k, v in rows.items()
                },
                "side_by_side": {"d": again["d"], "e": again["e"]},
                "ratios": ratios,
                "search_wall_s": search_wall,
                "grid_wall_s": grid_wall,
                "train": train,
                "machine": fingerprint().to_dict(),
                "grid": [
                    {
                        "config": c.to_dict(),
                        "status": r.status,
                        "images_per_s": r.stats.images_per_s if r.stats else None,
                    }
                    for c, r in grid_results
                ],
            },
            indent=1,
        )
    )
    print(md)
    return 0


def render(
    a: argparse.Namespace,
    argv: list[str] | None,
    rows: dict[str, Row],
    side_d: Row,
    side_e: Row,
    ratios: dict[str, str],
    search_wall: float,
    grid_wall: float,
    n_grid: int,
    outcome: dict[str, Any],
    train: dict[str, Any] | str,
    total: float,
) -> str:
    cmd = "python bench/compare.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        f"# autotune vs defaults, hand recipe, AutoBatch and the grid ({dt.date.today().isoformat()})",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {fingerprint().summary()}  ",
        f"Space (search and grid): batch {a.batch}, workers {a.workers}, imgsz {a.imgsz}, cache {a.cache}, "
        f"source {a.source}; "
        f"{a.iters} measured iterations per probe; total {total / 60:.1f} min.",
        "",
        "| | config | images/s (each) | mean | note |",
        "|---|---|---|---|---|",
    ]
    for row in (*rows.values(), side_d, side_e):
        cfg = row.config.label() if row.config else "-"
        each = ", ".join(f"{v:.1f}" for v in row.images_per_s) or "-"
        lines.append(
            f"| {row.name} | {cfg} | {each} | {row.ips:.1f} |" if row.ips else f"| {row.name} | {cfg} | - | - |"
        )
        lines[-1] += f" {row.note} |"
    lines += ["", "| ratio | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in ratios.items())]
    lines += [
        "",
        f"Search wall time {search_wall / 60:.1f} min ({len(outcome.get('trials', []))} trials, factor probes "
        f"and the baseline's repeat included) vs the exhaustive grid's {grid_wall / 60:.1f} min ({n_grid} probes): "
        f"{grid_wall / search_wall:.1f}x longer.",
    ]
    if isinstance(train, dict):
        eps = train.get("epochs", [])
        errs = [
            f"epoch {e.get('epoch')}: predicted {e['predicted_train_s']:.1f} s, actual {e['train_s']:.1f} s "
            f"({e['train_s'] / e['predicted_train_s'] - 1:+.1%})"
            for e in eps
            if e.get("predicted_train_s") and e.get("train_s")
        ]
        lines += ["", "Short `autotune train --best`: " + ("; ".join(errs) or json.dumps(train)[:300])]
    else:
        lines += ["", f"Short `autotune train --best`: {train}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
