"""One real search on a tiny workload, through the CLI in a subprocess (slow tier)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

pytestmark = pytest.mark.integration

BUDGET_S = 240  # the baseline, a few ~14-20 s trials, and the side-by-side phase (4 probes, within its 40% cap)


def test_real_search_on_a_tiny_workload(tiny_demo, tmp_path):
    db = tmp_path / "study.db"
    env = {**os.environ, "AUTOTUNE_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "autotune.cli", "search", "--budget", f"{BUDGET_S}s", "--data", str(tiny_demo)]
    cmd += ["--imgsz", "64", "--batch", "2-8", "--device", "cpu", "--iters", "4", "--storage", f"sqlite:///{db}"]
    cmd += ["--study", "tiny", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    # ends within the budget plus at most one probe
    longest = max([t["duration_s"] for t in out["trials"]] + [out["baseline"]["duration_s"]])
    assert out["elapsed_s"] <= BUDGET_S + longest + 10
    assert out["winner"] is not None and out["winner"]["feasible"]
    assert out["baseline"]["status"] == "ok"
    # the headline comes from fresh runs of the baseline and the winner, side by side
    sb = out["side_by_side"]
    assert sb is not None and sb["rounds"] == 2 and sb["configs"]["baseline"] == out["baseline"]["requested"]
    assert sb["speedup"]["low"] <= sb["speedup"]["factor"] <= sb["speedup"]["high"]
    assert [r["config"]["imgsz"] for r in out["front"]] == [64]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == len(out["trials"]) >= 2
    measured = [t.user_attrs["result"] for t in finished if (t.user_attrs.get("result") or {}).get("stats")]
    raw = [r["timings"]["compute_s"] for r in measured]
    assert raw and all(len(r) >= 4 for r in raw)  # raw per-iteration timings are in the storage
    profile = tmp_path / out["profile"]
    cfg = yaml.safe_load(profile.read_text())
    # 320x180 frames at imgsz 64: the pre-resized source is searched too; a resized winner trains from the copy
    assert study.user_attrs["space"]["source"] == ["original", "resized"]
    root = Path(tiny_demo).parent
    copy = root.with_name(f"{root.name}-64px") / "data.yaml"
    resized = out["winner"]["config"]["source"] == "resized"
    assert cfg["data"] == (str(copy) if resized else str(tiny_demo))
    assert cfg["imgsz"] == 64 and cfg["model"] == "yolo11n.yaml"
    from ultralytics.cfg import get_cfg

    get_cfg(cfg=str(profile))  # Ultralytics accepts it as it is
