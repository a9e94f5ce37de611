"""A study written before the restructuring (tests/data/legacy_study) stays readable by `report` and `train`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_dataset
from typer.testing import CliRunner

from autotune.cli import app

HERE = Path(__file__).parent / "data" / "legacy_study"
# where the fixture's study says its dataset lives (tests/data/legacy_study/README.md made it there)
LEGACY_DATA = Path("/tmp/autotune-legacy-fixture/data")
FAULTS = Path(__file__).parent / "faults"


@pytest.fixture
def legacy_db(tmp_path) -> str:
    db = tmp_path / "studies.db"
    shutil.copyfile(HERE / "studies.db", db)
    return f"sqlite:///{db}"


# Issue 14 changed these on purpose: a side measured once now gets the noise floor as its interval (it had none),
# and the report says where its headline comes from; checked apart (wider, never narrower, than before)
NEW_KEYS = {
    "noise_floor",
    "measured_product_interval",
    "interaction_interval",
    "end_to_end_source",
    "interval",
    "compile",
    "compile_s",
    "validation",
    "val_batch",
}  # issue 16: the compile lever's section and one-time cost (empty, 0 here); the validation section
WIDENED = {"low", "high", "end_to_end_low", "end_to_end_high"}


def _close(a, b, path="") -> None:
    """Equal JSON values, floats to 1e-9 relative."""
    if isinstance(a, dict):
        assert set(a) == set(b) - NEW_KEYS, (path, set(a) ^ set(b))
        for k in a:
            if k in WIDENED:
                assert (b[k] <= a[k]) if k.endswith("low") else (b[k] >= a[k]), f"{path}.{k}"
                continue
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert b == pytest.approx(a, rel=1e-9), path
    else:
        assert a == b, path


def test_report_of_a_study_written_before_the_restructuring_is_unchanged(legacy_db, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "--storage", legacy_db, "--study", "legacy", "--out", str(out)])
    assert result.exit_code == 0, result.output
    got = json.loads((out / "report.json").read_text())
    want = json.loads((HERE / "report.json").read_text())
    for d in (got, want):
        for key in ("created", "storage"):  # when and from which copy of the file it was read
            d.pop(key, None)
    # issue 16: a CPU study's factor table says why mixed precision is absent (a row of its own, unmeasured)
    (amp,) = [r for r in got["factors"] if r["lever"] == "amp"]
    assert amp["state"] == "absent on a CPU" and amp["measured"] is None
    got["factors"].remove(amp)
    _close(want, got)
    assert got["noise_floor"] == pytest.approx(0.10)  # its baseline's two runs differ by less than 10%
    assert "selection run included" in got["end_to_end_source"]  # no side-by-side runs in a study that old
    assert {p.name for p in out.iterdir()} >= {"report.md", "report.html", "report.json", "factors.png"}


@pytest.mark.integration
def test_train_best_trains_the_winner_of_a_study_written_before_the_restructuring(legacy_db, tmp_path):
    make_dataset(LEGACY_DATA, n_train=48, n_val=8, size=(160, 120))  # the same bytes the study measured
    # the fixture was recorded on one machine and its stored phases belong to that machine's identity: this process
    # fingerprints as that machine (tests/faults), as if it had been recorded here
    from autotune.search import store

    recorded = store.load(store.open_storage(legacy_db, create=False), "legacy").meta().machine.to_dict()
    env = {**os.environ, "AUTOTUNE_CACHE": str(tmp_path / "cache"), "AUTOTUNE_FAULT": "machine",
           "AUTOTUNE_FAULT_MACHINE": json.dumps(recorded),
           "PYTHONPATH": f"{FAULTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    cmd = [sys.executable, "-m", "autotune", "train", "--study", "legacy", "--storage", legacy_db, "--epochs", "1",
           "--no-measure", f"project={tmp_path / 'runs'}", "name=legacy"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the winner trains from the copy pre-resized to 64 px; the stored no-mosaic phase predicts its one epoch
    assert "batch=7 workers=2 imgsz=64 cache=disk source=resized" in proc.stderr
    assert "measuring the" not in proc.stderr  # no phase probe: every phase it needs was stored by the old code
    epoch = [ln for ln in proc.stdout.splitlines() if ln.startswith("epoch 1/1")]
    assert epoch and "predicted" in epoch[0] and epoch[0].endswith("[no mosaic]")


def test_a_study_written_before_validation_was_ranked_reads_as_ranked_on_training_alone(legacy_db):
    from autotune.records.search import RANK_TRAIN
    from autotune.search import store

    meta = store.load(store.open_existing(legacy_db), "legacy").meta()
    assert meta.rank_on == RANK_TRAIN and meta.n_val == 0
