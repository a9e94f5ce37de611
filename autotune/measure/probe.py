"""One probe, the caller's side: real Ultralytics training of one configuration for a short, steady-state window.

`probe()` runs probe_run.measure() in its own subprocess (isolate.py) and always returns a ProbeResult, whatever
happened there. This module also holds the request that crosses the subprocess boundary (plain JSON), shared by
the loader-only ceiling and the cache bench, which run the same way.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotune.files import cache_root
from autotune.measure import isolate
from autotune.measure.dataset import load_dataset
from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.probe import ProbeResult, failed
from autotune.records.status import OOM, PRUNED

Heartbeat = Callable[[dict[str, Any]], Any]


def request_for(config: TrainConfig, workload: Workload, options: ProbeOptions, scratch: Path) -> dict[str, Any]:
    """What crosses the subprocess boundary: plain JSON."""
    return {
        "config": config.to_dict(),
        "workload": workload.to_dict(),
        "options": options.to_dict(),
        "scratch": str(scratch),
    }


def parse_request(request: dict[str, Any]) -> tuple[TrainConfig, Workload, ProbeOptions, Path]:
    return (
        TrainConfig.from_dict(request["config"]),
        Workload.from_dict(request["workload"]),
        ProbeOptions.from_dict(request["options"]),
        Path(request["scratch"]),
    )


def predicted_setup_s(config: TrainConfig, options: ProbeOptions, n_images: int) -> float:
    """Generous time to reach the first iteration: imports, model build, dataset scan, subset cache build."""
    from autotune.measure.staging import window_cap

    staged = min((options.warmup_max + window_cap(options, config.batch, config.workers) + 1) * config.batch, n_images)
    per_image = 0.05 if config.cache == "none" else 0.15  # decode (+ write .npy) seconds per image, slow disk
    # torch.compile compiles at the first iteration, before any heartbeat: minutes on a small CPU, more in the
    # max-autotune modes (they benchmark kernel choices)
    compiling = {"off": 0.0, "default": 600.0, "reduce-overhead": 600.0}.get(config.compile, 1800.0)
    return 180.0 + staged * per_image + compiling


def scratch_root(options: ProbeOptions) -> Path:
    root = Path(options.scratch).expanduser() if options.scratch else cache_root() / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    return root


def probe(
    config: TrainConfig,
    workload: Workload,
    options: ProbeOptions | None = None,
    on_progress: Heartbeat | None = None,
) -> ProbeResult:
    """Measure one configuration in its own subprocess. Never raises for what happens inside the probe."""
    from autotune.measure.machine import fingerprint

    options = options or ProbeOptions()
    n_images = len(load_dataset(workload.data).train)  # bad input fails here, loudly, before any subprocess
    policy = isolate.TimeoutPolicy(
        startup_s=predicted_setup_s(config, options, n_images),
        hard_s=options.timeout_s,
    )
    with isolate.scratch_dir(scratch_root(options), "probe-", keep=options.keep_scratch) as work:
        request = request_for(config, workload, options, work)
        outcome = isolate.run_isolated(
            "autotune.measure.probe_run:run_in_subprocess", request, work, policy, on_progress
        )
        if outcome.status == PRUNED:
            result = failed(PRUNED, "stopped early: clearly slower than the best so far", config, workload)
        elif outcome.result is not None and outcome.status == "ok":
            result = ProbeResult.from_dict(outcome.result)
            if result.status == "crashed" and outcome.oom_killed:
                result = ProbeResult(**{**result.__dict__, "status": OOM, "reason": result.reason + " (OOM killer)"})
        else:
            result = failed(outcome.status, outcome.reason, config, workload, options=options.to_dict())
        log_copy = _keep_log(work)
    return ProbeResult(
        **{
            **result.__dict__,
            "machine": fingerprint().to_dict(),
            "duration_s": outcome.duration_s,
            "log_path": str(log_copy) if log_copy else "",
        }
    )


def _keep_log(work: Path) -> Path | None:
    """Keep the probe's log (Ultralytics' output) outside the scratch folder, which is deleted."""
    log = work / "probe.log"
    if not log.exists():
        return None
    dest_dir = work.parent.parent / "logs"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{work.name}.log"
    shutil.copyfile(log, dest)
    return dest
