"""Parsing and validation of what users type, and the optimizer Ultralytics would pick."""

from types import SimpleNamespace

import pytest

from autotune.errors import UserError
from autotune.measure.optimizer import auto_optimizer, planned_iterations
from autotune.measure.ultralytics_glue import resolve_model
from autotune.records.config import ProbeOptions, TrainConfig
from autotune.units import parse_assignments, parse_duration, parse_memory_limit, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20min", 1200), ("90s", 90), ("1h", 3600), ("1.5h", 5400), ("1h30m", 5400), ("45", 2700), ("2 min", 120)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "0", "-5min", "", "5 parsecs", "0s"])
def test_parse_duration_rejects(text):
    with pytest.raises(UserError):
        parse_duration(text)


def test_parse_memory_limit():
    assert parse_memory_limit("0.5", total_bytes=1000) == 500
    assert parse_memory_limit("20GiB", total_bytes=1) == 20 * 2**30
    assert parse_memory_limit("512MiB", total_bytes=1) == 512 * 2**20
    assert parse_memory_limit("1.5G", total_bytes=1) == int(1.5 * 2**30)
    for bad in ("0", "1.5", "lots", "-3GiB", "20"):
        with pytest.raises(UserError):
            parse_memory_limit(bad, total_bytes=1000)


def test_parse_size_and_assignments():
    assert parse_size("1280x720") == (1280, 720)
    with pytest.raises(UserError):
        parse_size("1280*720")
    with pytest.raises(UserError):
        parse_size("16x16")
    assert parse_assignments("batch=16, workers=8") == {"batch": "16", "workers": "8"}
    with pytest.raises(UserError):
        parse_assignments("batch")


@pytest.mark.parametrize(
    "changes",
    [{"batch": 0}, {"imgsz": 16}, {"workers": -1}, {"cache": "ssd"}, {"device": "cuda:x"}, {"batch": True}],
)
def test_train_config_rejects_bad_values(changes):
    with pytest.raises(UserError):
        TrainConfig(**changes)


def test_train_config_roundtrip_and_accumulate():
    c = TrainConfig(batch=8, workers=2, imgsz=128, cache="ram", device="cpu")
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert c.accumulate == 8
    assert TrainConfig(batch=100).accumulate == 1
    assert TrainConfig(batch=24).accumulate == 3  # round(64/24) = round(2.67)


def test_probe_options_reject():
    with pytest.raises(UserError):
        ProbeOptions(iters=0)
    with pytest.raises(UserError):
        ProbeOptions(page_cache="hot")
    with pytest.raises(UserError):
        ProbeOptions(memory_limit="nope")


def test_resolve_model():
    assert resolve_model("yolo11n.yaml") == "yolo11n.yaml"
    for bad in ("yolo99z.yaml", "yolo11n.pt", "resnet", "missing/file.pt"):
        with pytest.raises(UserError):
            resolve_model(bad)


def _ultralytics_choice(n_train: int, batch: int, epochs: int, nc: int) -> tuple[str, float]:
    """Ask Ultralytics' own BaseTrainer.build_optimizer what 'auto' gives for this run."""
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolo11n.yaml", nc=nc, verbose=False)
    fake = SimpleNamespace(data={"nc": nc}, args=SimpleNamespace(lr0=0.01, optimizer="auto", warmup_bias_lr=0.1))
    iterations = planned_iterations(n_train, batch, 64, epochs)
    opt = BaseTrainer.build_optimizer(fake, model, name="auto", lr=0.01, momentum=0.937, iterations=iterations)
    return type(opt).__name__, fake.args.lr0


@pytest.mark.parametrize(
    ("n_train", "batch", "epochs"),
    [
        (25000, 16, 100),  # the story's dataset, a 100-epoch run: 391 x 100 iterations
        (800, 16, 100),  # the default workload: 13 x 100
        (6400, 64, 100),  # exactly 10,000: still AdamW
        (6401, 64, 100),
    ],
)
def test_auto_optimizer_matches_ultralytics(n_train, batch, epochs):
    ours = auto_optimizer(n_train, batch, 64, epochs, nc=3)
    name, lr0 = _ultralytics_choice(n_train, batch, epochs, nc=3)
    assert ours.name == name
    assert ours.lr0 == pytest.approx(lr0)


def test_auto_optimizer_story_is_musgd():
    assert auto_optimizer(25000, 16, 64, 100, nc=3).name == "MuSGD"


def test_loader_workers_caps_as_ultralytics_build_dataloader_does():
    from autotune.measure.machine import loader_workers

    assert loader_workers(8, 16, 800, cpus=16, gpus=1) == 8  # 50 batches, 16 CPUs: as asked
    assert loader_workers(8, 118, 800, cpus=16, gpus=1) == 7  # ceil(800 / 118) = 7 batches (the H100 check)
    assert loader_workers(8, 16, 800, cpus=16, gpus=4) == 4  # 16 CPUs over 4 visible GPUs
    assert loader_workers(8, 16, 800, cpus=2, gpus=0) == 2  # CPU device: the CPU count
    assert loader_workers(8, 64, 50, cpus=16, gpus=1) == 0  # one batch: Ultralytics loads in-process
    assert loader_workers(0, 16, 800, cpus=16, gpus=1) == 0


def test_a_workers_cap_the_full_run_shares_is_no_mismatch():
    from autotune.measure.ultralytics_glue import mismatches
    from autotune.records.config import TrainConfig

    config = TrainConfig(batch=118, workers=8, imgsz=640, device="0")
    eff = {"batch": 118, "workers": 7, "imgsz": 640, "cache": "none", "amp": True, "accumulate": 1,
           "optimizer": "AdamW", "loader_processes": 7}  # fmt: skip
    opt = {"optimizer": "AdamW"}
    assert mismatches(config, eff, opt, cuda=True, workers_expected=7) == []
    ((status, reason),) = mismatches(config, eff, opt, cuda=True)  # without the expected cap: a change
    assert status == "infeasible" and "capped workers 8 -> 7" in reason
    assert mismatches(config, {**eff, "workers": 5}, opt, cuda=True, workers_expected=7)[0][0] == "infeasible"


def test_ultralytics_logs_to_stderr_so_json_on_stdout_stays_clean(tmp_path):
    """A fresh machine: Ultralytics' first import logs "Creating new Ultralytics Settings": not in autotune's output
    (it used to precede even one-line errors); Ultralytics' later log lines go to stderr, never to stdout."""
    import os
    import subprocess
    import sys

    code = (
        "from autotune.measure.ultralytics_glue import resolve_model; resolve_model('yolo11n.yaml')\n"
        "from ultralytics.utils import LOGGER; LOGGER.info('a log line')\n"
        "print('{}')"
    )
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "fresh"), "YOLO_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == "{}\n"
    assert "Ultralytics Settings" not in out.stderr and "a log line" in out.stderr
    assert (tmp_path / "fresh" / "Ultralytics" / "settings.json").is_file()  # the settings were made all the same
