"""The GPU check: autotune's GPU-only paths exercised end to end on a lent GPU machine, within --deadline (520 s):
steps past it are skipped (the search first; steps 1-4 took ~100 s on an H100).

Steps, each a real `python -m autotune ...` run (the user's path) or a call into the package:
  1. the machine: GPU name, memory, driver, torch;
  2. the embedded default workload (1000 synthetic 1280x720 frames), trained at imgsz 640;
  3. probes at batch 16 and 64 (no memory limit);
  4. a forced OOM: batch 512 under an enforced limit of 0.3 of the card, expected status `oom` at batch 512;
  5. loader truth (issue 14): probes at imgsz 640, no cache, workers 1 and 8, each against a long run of the same
     configuration (Ultralytics' own loop, a plain stopwatch, 200 full batches after 40 dropped, on a workload big
     enough that no image is read twice); and the batch-16 probe repeated 3x side by side;
  6. levers (issue 16): AMP on vs off, torch.compile off vs default and AMP in FP16 vs bfloat16 at imgsz 640,
     batch 16, side by side (A B B A), with compile's one-time seconds (bf16 last: it runs if time is left);
  7. a search of 200 s under that limit (a GPU probe takes 26-42 s: 90 s fit no trial), with batch 512 as an
     early `--try`, so the study holds an OOM trial recorded as infeasible (a completed trial with the OOM
     reason, not a halved batch); the search asks Ultralytics' AutoBatch for its batch at the same fraction
     and measures it as a seed trial.
Results: gpu_check.md and gpu_check.json in --out ($OUT when set). Exit 2 with one line where no CUDA GPU is seen.

`--rehearse-on-cpu` runs the same steps on a CPU with tiny sizes, to test this script where no GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # autotune from this checkout, installed or not (the GPU machine has no install)
GiB = 2**30


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]
    rc: int
    wall_s: float
    result: Any  # the command's --json output, its last stdout line when not JSON, or None
    stderr_tail: str


@dataclass(frozen=True)
class Sizes:
    """What the check runs at: real GPU sizes, or tiny ones for a CPU rehearsal."""

    device: str
    imgsz: int
    batches: tuple[int, int]
    oom_batch: int
    limit: str  # memory limit (a fraction of the card; RAM on a CPU)
    search_batch: str
    budget: str
    iters: int
    truth_workers: tuple[int, ...] = (1, 8)  # loader truth: probe vs long run at these workers
    truth_skip: int = 40  # long run: iterations dropped, then truth_iters timed
    truth_iters: int = 200
    lever_rounds: int = 2  # AMP and compile: each side this many times, alternating (A B B A)
    lever_compile: bool = True  # False on the CPU rehearsal: yolo11n compiles for ~7 min on 2 cores


GPU = Sizes(device="0", imgsz=640, batches=(16, 64), oom_batch=512, limit="0.3", search_batch="16-512",
            budget="200s", iters=20)  # fmt: skip
CPU = Sizes(device="cpu", imgsz=96, batches=(4, 8), oom_batch=16, limit="0.92GiB", search_batch="4-16",
            budget="60s", iters=4, truth_workers=(1, 2), truth_skip=10, truth_iters=20, lever_rounds=1,
            lever_compile=False)  # fmt: skip


def run_cli(name: str, args: list[str], timeout_s: float, env: dict[str, str]) -> Step:
    """`python -m autotune <args>`; its stdout is one JSON object (--json), its stderr the human progress."""
    argv = (sys.executable, "-m", "autotune", *args)
    print(f"[gpu_check] {name}: autotune {' '.join(args)}", flush=True)
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=ROOT)
        rc, out, errs = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, errs = 124, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), ""
    wall = time.monotonic() - t0
    last = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        result = json.loads(last) if last else None
    except json.JSONDecodeError:
        result = last  # a plain answer, such as demo-data's data.yaml path
    tail = "\n".join(errs.strip().splitlines()[-6:])
    print(f"[gpu_check] {name}: exit {rc} in {wall:.1f} s", flush=True)
    if rc not in (0, 1) or result is None:
        print(tail, flush=True)
    return Step(name, tuple(args), rc, round(wall, 2), result, tail)


def machine_facts(device: str) -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__}
    try:
        import ultralytics

        facts["ultralytics"] = ultralytics.__version__
    except ImportError as e:
        facts["ultralytics"] = f"missing: {e}"
    if device != "cpu":
        props = torch.cuda.get_device_properties(int(device))
        facts.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / GiB, 1), cuda=torch.version.cuda)
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
        facts["driver"] = q.stdout.strip() or None
    facts["cpus"] = os.cpu_count()
    return facts


def probe_row(step: Step) -> dict[str, Any]:
    """The few numbers of a probe that the table shows."""
    r = step.result or {}
    stats, mem, eff = r.get("stats") or {}, r.get("memory") or {}, r.get("effective") or {}
    gpu = mem.get("peak_gpu_reserved_bytes")
    return {
        "step": step.name,
        "status": r.get("status", f"exit {step.rc}"),
        "reason": r.get("reason", ""),
        "batch requested": (r.get("requested") or {}).get("batch"),
        "batch effective": eff.get("batch"),
        "amp": eff.get("amp"),
        "images/s": round(stats["images_per_s"], 1) if stats.get("images_per_s") else None,
        "data stall": round(stats["stall_fraction"], 3) if stats.get("stall_fraction") is not None else None,
        "peak GPU reserved GiB": round(gpu / GiB, 2) if gpu else None,
        "GPU limit GiB": round(mem["gpu_limit_bytes"] / GiB, 2) if mem.get("gpu_limit_bytes") else None,
        "wall s": step.wall_s,
    }


def search_rows(step: Step) -> list[dict[str, Any]]:
    r = step.result or {}
    return [
        {
            "trial": t["number"],
            "config": t["config"],
            "state": t["state"],
            "status": t["status"],
            "feasible": t["feasible"],
            "images/s": round(t["images_per_s"], 1) if t.get("images_per_s") else None,
            "peak GiB": round(t["peak_memory_bytes"] / GiB, 2) if t.get("peak_memory_bytes") else None,
            "reason": t["reason"],
        }
        for t in r.get("trials", [])
    ]


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("" if r.get(k) is None else str(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def checks(probes: list[Step], oom: Step, search: Step | None, sizes: Sizes) -> list[tuple[str, bool, str]]:
    """What must hold on a GPU: (claim, held, evidence)."""
    out: list[tuple[str, bool, str]] = []
    for s in probes:
        r = s.result or {}
        out.append((f"{s.name} ok", r.get("status") == "ok", f"status {r.get('status')}, exit {s.rc}"))
    r = oom.result or {}
    eff_batch = (r.get("effective") or {}).get("batch")
    out.append(
        (
            f"batch {sizes.oom_batch} under limit {sizes.limit} is recorded as out of memory, at that batch",
            r.get("status") in ("oom", "over_limit") and eff_batch in (None, sizes.oom_batch),
            f"status {r.get('status')}, effective batch {eff_batch}: {r.get('reason', '')[:160]}",
        )
    )
    if search is not None:
        res = search.result or {}
        trials = res.get("trials", [])
        big = [t for t in trials if t["config"].get("batch") == sizes.oom_batch]
        out.append(
            (
                f"the search's batch-{sizes.oom_batch} trial is a completed infeasible trial",
                bool(big) and all(t["state"] == "COMPLETE" and not t["feasible"] for t in big),
                "; ".join(f"#{t['number']} {t['state']} {t['status']}: {t['reason'][:100]}" for t in big) or "none",
            )
        )
        w = res.get("winner")
        out.append(("the search found a feasible winner", w is not None, json.dumps(w["config"]) if w else "none"))
    return out


def truth_checks(truth: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Issue 14 on a GPU: every probe within 10% of its long run; the 3 repeats within 10% of each other."""
    out = []
    for r in truth.get("rows", []):
        p, ref = r.get("probe images/s"), r.get("long run images/s")
        ok = isinstance(p, float) and isinstance(ref, float) and abs(p / ref - 1) <= 0.10
        out.append((f"workers {r['workers']}: probe within 10% of the long run", ok, f"{p} vs {ref}"))
    reps = truth.get("repeats", [])
    if len(reps) >= 2:
        spread = (max(reps) - min(reps)) / (sum(reps) / len(reps))
        out.append(("the probe repeated 3x agrees within 10%", spread <= 0.10, f"{reps}: spread {spread:.1%}"))
    return out


def render_md(report: dict[str, Any]) -> str:
    m = report["machine"]
    parts = [
        "# GPU check\n",
        f"Machine: {m.get('gpu', 'CPU rehearsal')}, {m.get('gpu_memory_gib', '-')} GiB, driver {m.get('driver')}, "
        f"CUDA {m.get('cuda')}, torch {m['torch']}, ultralytics {m['ultralytics']}, Python {m['python']}, "
        f"{m['cpus']} CPUs. Date {report['date']}.\n",
        f"Command: `{report['command']}`; total {report['total_s']:.0f} s.\n",
        "## Checks\n",
        table([{"check": c, "held": "yes" if ok else "NO", "evidence": ev} for c, ok, ev in report["checks"]]),
        "## Probes (imgsz {}, default workers)\n".format(report["sizes"]["imgsz"]),
        table(report["probes"]),
        "## Loader truth: probe vs long run (issue 14)\n",
        table(report.get("loader_truth", {}).get("rows", [])),
        f"Probe repeated side by side: {report.get('loader_truth', {}).get('repeats')} images/s.\n",
        "## Levers side by side: AMP and torch.compile (issue 16)\n",
        *(f"- {lever}: {json.dumps(v)}" for lever, v in report.get("levers", {}).items()),
        "",
        "## AutoBatch\n",
        f"{report['autobatch']}\n",
        "## Search\n",
    ]
    s = report.get("search")
    if s:
        parts += [
            f"`autotune {' '.join(s['argv'])}`: exit {s['rc']}, {s['wall_s']} s wall.\n",
            f"Winner: {s['winner']}; against AutoBatch's batch: {s['vs_autobatch']}; stopped: {s['stop_reason']}\n",
            table(s["trials"]),
        ]
    else:
        parts.append("(not run: out of time)\n")
    return "\n".join(parts)


def loader_truth(sizes: Sizes, env: dict[str, str], left: Any) -> dict[str, Any]:
    """Probe vs long run at each of sizes.truth_workers (batch sizes.batches[0], no cache), and the probe 3x."""
    sys.path.insert(0, str(ROOT / "bench"))
    from loader_truth import Case, run_long

    batch = sizes.batches[0]
    images = int((sizes.truth_skip + sizes.truth_iters + 4 * max(sizes.truth_workers) + 1) * batch / 0.8) + 2
    big = run_cli(f"workload of {images} images", ["demo-data", "--images", str(images)], 600, env)
    data = big.result if isinstance(big.result, str) else None
    rows: list[dict[str, Any]] = []
    repeats: list[float] = []
    if data is None:
        return {"rows": rows, "repeats": repeats, "error": f"demo-data failed: {big.stderr_tail[-300:]}"}
    common = ["--data", data, "--device", sizes.device, "--imgsz", str(sizes.imgsz), "--batch", str(batch),
              "--cache", "none", "--json"]  # fmt: skip
    for w in sizes.truth_workers:
        if left() < 150:
            break
        p = run_cli(f"probe workers {w}", ["probe", "--workers", str(w), *common], max(30, min(150, left())), env)
        t0 = time.monotonic()
        case = Case("default", sizes.imgsz, batch, w)
        long = run_long(case, data, sizes.truth_skip, sizes.truth_iters, max(60, min(300, left())), sizes.device, env)
        stats = (p.result or {}).get("stats") or {}
        ips, ref = stats.get("images_per_s"), long.get("images_per_s")
        rows.append({"workers": w, "probe images/s": round(ips, 1) if ips else None,
                     "probe stall": round(stats.get("stall_fraction", 0), 3) if ips else None,
                     "probe window s": round(stats.get("window_s", 0), 2) if ips else None,
                     "long run images/s": round(ref, 1) if ref else long.get("error"),
                     "long run stall": round(long["stall"], 3) if ref else None,
                     "probe vs long": f"{ips / ref - 1:+.1%}" if ips and ref else None,
                     "long run s": round(time.monotonic() - t0)})  # fmt: skip
    for k in range(3):
        if left() < 60:
            break
        p = run_cli(f"probe repeat {k + 1}", ["probe", "--workers", str(max(sizes.truth_workers)), *common],
                    max(30, min(120, left())), env)  # fmt: skip
        ips = ((p.result or {}).get("stats") or {}).get("images_per_s")
        if ips:
            repeats.append(round(ips, 1))
    return {"rows": rows, "repeats": repeats}


def levers(sizes: Sizes, env: dict[str, str], left: Any) -> dict[str, Any]:
    """Issue 16: AMP on vs off, compile off vs default, FP16 vs bf16 at batch sizes.batches[0], side by side (A B B A);
    images/s of each run, the ratio of the means, and compile's one-time seconds."""
    common = ["--device", sizes.device, "--imgsz", str(sizes.imgsz), "--batch", str(sizes.batches[0]),
              "--iters", str(sizes.iters), "--json"]  # fmt: skip
    pairs = {"amp": (("on", ["--amp"]), ("off", ["--no-amp"])),
             "compile": (("off", ["--compile", "off"]), ("default", ["--compile", "default"])),
             "bf16": (("fp16", ["--amp"]), ("bf16", ["--bf16"]))}  # fmt: skip
    out: dict[str, Any] = {}
    if sizes.device == "cpu":
        del pairs["bf16"]
        out["bf16"] = "skipped: bfloat16 autocast needs a CUDA GPU (Ultralytics trains FP32 on a CPU)"
    if not sizes.lever_compile:
        del pairs["compile"]
        out["compile"] = "skipped: compiling takes minutes on a CPU (tests/test_probe_integration.py covers it)"
    for lever, sides in pairs.items():
        runs: dict[str, list[float]] = {name: [] for name, _ in sides}
        compile_s: list[float] = []
        order = [k % 2 if (k // 2) % 2 == 0 else 1 - k % 2 for k in range(2 * sizes.lever_rounds)]  # A B B A
        for k in order:
            if left() < 150:
                break
            name, flags = sides[k]
            p = run_cli(f"{lever} {name}", ["probe", *flags, *common], max(60, min(300, left())), env)
            r = p.result if isinstance(p.result, dict) else {}
            ips = (r.get("stats") or {}).get("images_per_s")
            if ips:
                runs[name].append(round(ips, 1))
            if r.get("compile_cost"):
                compile_s.append(round(r["compile_cost"]["compile_s"] + r["compile_cost"]["recompile_s"], 1))
            elif r and r.get("status") != "ok":
                runs.setdefault("failed", []).append(f"{name}: {r.get('status')}: {str(r.get('reason'))[:120]}")  # type: ignore[arg-type]
        (a, _), (b, _) = sides
        ratio = (sum(runs[b]) / len(runs[b])) / (sum(runs[a]) / len(runs[a])) if runs[a] and runs[b] else None
        out[lever] = {"images_per_s": runs, f"{b} / {a}": round(ratio, 3) if ratio else None, "compile_s": compile_s}
    return out


def cpu_limit(probes: list[Any]) -> str | None:
    """For the CPU rehearsal: 5% over the largest peak (training or validation) of the batch probes, so the batch
    probes fit and the larger OOM batch (2x the largest, ~10% more RAM at these sizes) does not."""
    peaks = []
    for step in probes:
        m = (step.result or {}).get("memory") or {}
        peaks.append(max(m.get("peak_host_bytes") or 0, m.get("val_peak_host_bytes") or 0))
    return f"{int(max(peaks) * 1.05)}B" if peaks and min(peaks) > 0 else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "bench/results/gpu_check"))
    ap.add_argument("--rehearse-on-cpu", action="store_true", help="tiny sizes on the CPU, to test this script")
    ap.add_argument("--deadline", type=float, default=520.0, help="seconds; later steps are skipped past it")
    args = ap.parse_args(argv)
    t_start = time.monotonic()
    sizes = CPU if args.rehearse_on_cpu else GPU
    import torch

    if not args.rehearse_on_cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is visible to torch here; run it on a GPU machine (or --rehearse-on-cpu)")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    facts = machine_facts(sizes.device)
    print(f"[gpu_check] machine: {json.dumps(facts)}", flush=True)

    left = lambda: args.deadline - (time.monotonic() - t_start)  # noqa: E731
    demo = run_cli("workload", ["demo-data"], 120, env)
    common = ["--device", sizes.device, "--imgsz", str(sizes.imgsz), "--iters", str(sizes.iters), "--json"]
    probes = [
        run_cli(f"probe batch {b}", ["probe", "--batch", str(b), *common], max(30, min(120, left())), env)
        for b in sizes.batches
    ]
    if args.rehearse_on_cpu:  # RAM use on a CPU varies by machine: a limit just above the batch-8 probe's peak
        sizes = replace(sizes, limit=cpu_limit(probes) or sizes.limit)
    oom = run_cli(
        f"probe batch {sizes.oom_batch}, limit {sizes.limit}",
        ["probe", "--batch", str(sizes.oom_batch), "--memory-limit", sizes.limit, *common],
        max(30, min(120, left())),
        env,
    )

    truth = loader_truth(sizes, env, left)
    lever_runs = levers(sizes, env, left)
    print(f"[gpu_check] levers: {json.dumps(lever_runs)}", flush=True)
    search_step = None
    budget_s = float(sizes.budget.rstrip("s"))
    if left() > budget_s + 30:
        search_step = run_cli(
            "search",
            [
                "search",
                "--budget",
                sizes.budget,
                "--device",
                sizes.device,
                "--imgsz",
                str(sizes.imgsz),
                "--batch",
                sizes.search_batch,
                "--vram-limit",
                sizes.limit,
                "--try",
                f"batch={sizes.oom_batch}",
                "--cache",
                "none,ram",
                "--fresh",
                "--iters",
                str(sizes.iters),
                "--json",
            ],
            budget_s + 150,
            env,
        )
    res = (search_step.result if search_step else None) or {}
    ab_info = res.get("autobatch") or {}
    ab: int | str = (
        ab_info.get("batch")
        or ab_info.get("error")
        or ("n/a on a CPU" if sizes.device == "cpu" else "not asked (the search did not run)")
    )
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "bash bench/gpu_check.sh" + (" --rehearse-on-cpu" if args.rehearse_on_cpu else ""),
        "machine": facts,
        "sizes": asdict(sizes),
        "workload": {"data": demo.result, "wall_s": demo.wall_s, "log": demo.stderr_tail},
        "probes": [probe_row(s) for s in [*probes, oom]],
        "autobatch": (
            f"AutoBatch (asked by the search, fraction {ab_info.get('fraction')}): batch {ab} at imgsz {sizes.imgsz}"
            if isinstance(ab, int)
            else ab
        ),
        "checks": checks(probes, oom, search_step, sizes) + truth_checks(truth),
        "loader_truth": truth,
        "levers": lever_runs,
        "raw": {"probes": [asdict(s) for s in [*probes, oom]]},
    }
    if search_step is not None:
        w = res.get("winner")
        vs_ab = "n/a"
        abt = [t for t in res.get("trials", []) if isinstance(ab, int) and t["config"].get("batch") == ab]
        if w and abt and abt[0].get("images_per_s"):
            vs_ab = f"{w['images_per_s'] / abt[0]['images_per_s']:.2f}x (trial #{abt[0]['number']})"
        report["search"] = {
            "argv": search_step.argv,
            "rc": search_step.rc,
            "wall_s": search_step.wall_s,
            "winner": f"{w['config']} at {w['images_per_s']:.1f} images/s" if w else None,
            "vs_autobatch": vs_ab,
            "stop_reason": res.get("stop_reason"),
            "trials": search_rows(search_step),
        }
        report["raw"]["search"] = asdict(search_step)
    report["total_s"] = time.monotonic() - t_start
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / "gpu_check.md").write_text(render_md(report))
    print(render_md(report), flush=True)
    held = all(ok for _, ok, _ in report["checks"])
    print(f"[gpu_check] {'all checks held' if held else 'SOME CHECKS FAILED'} in {report['total_s']:.0f} s")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
