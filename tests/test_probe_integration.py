"""Real Ultralytics training on tiny workloads, on the CPU (slow tier: about a minute and a half)."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from conftest import make_dataset, tree_digest

from autotune.measure.probe import probe
from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.records.probe import ProbeResult

pytestmark = pytest.mark.integration

TINY = {"imgsz": 64, "batch": 4, "device": "cpu"}
FAST = {"iters": 4, "warmup_min": 1, "warmup_max": 10}


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


@pytest.fixture
def no_leftovers():
    """Fails the test if it leaves any process behind (Python's own resource tracker, started earlier, aside)."""
    before = _children()
    yield
    left = [psutil.Process(p) for p in _children() - before if psutil.pid_exists(p)]
    assert [f"{p.pid}: {' '.join(p.cmdline())}" for p in left] == []


def test_cli_probe_json_on_cpu_with_two_workers(tiny_demo, tmp_path, no_leftovers):
    """The CLI's --json prints exactly one JSON object; --workers 2 on CPU really runs two loader processes."""
    env = {**os.environ, "AUTOTUNE_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "autotune.cli", "probe", "--data", str(tiny_demo), "--imgsz", "64", "--batch", "4"]
    cmd += ["--workers", "2", "--cache", "ram", "--device", "cpu", "--iters", "4", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert result["status"] == "ok", result["reason"]
    assert result["effective"]["workers"] == 2
    assert result["effective"]["loader_processes"] == 2
    assert result["effective"]["cache"] == "ram"
    stats = result["stats"]
    assert stats["images_per_s"] > 0 and stats["sec_per_iter_q1"] <= stats["sec_per_iter_median"]
    assert 0 <= stats["stall_fraction"] < 1
    assert stats["accumulate"] == 16  # nbs 64 / batch 4
    start, end = result["timings"]["window_range"]
    assert start >= result["timings"]["warmup"] and end - start >= 4 and (end - start) % 2 == 0  # whole bursts
    assert len(result["timings"]["compute_s"]) == end  # it stopped once the window was full
    assert stats["window_s"] >= 2.0 or end - start >= 20  # 2 s by default, or the cap
    assert stats["images"] == 4 * (end - start)  # tiny_demo's batches are whole here
    assert stats["queue_start"] is not None and stats["produced"] >= 4  # the queue is read on Linux
    mem = result["memory"]
    assert mem["peak_host_bytes"] > 50 * 2**20 and mem["host_kind"] == "pss"
    assert mem["val_batch"] == 8 and mem["val_batch_s"] > 0
    # Ultralytics' validator, two passes over two batches; the warm pass is its batches plus a small remainder
    assert mem["val_batches"] == 2 and mem["val_first_pass_s"] > 0 and mem["val_fixed_s"] >= 0
    assert mem["val_pass_s"] == pytest.approx(2 * (mem["val_batch_s"] + mem["val_data_s"]) + mem["val_fixed_s"])
    assert mem["peak_gpu_reserved_bytes"] is None  # no GPU here
    assert result["cache"]["mode"] == "ram" and result["cache"]["full_bytes"] > 0 and result["cache"]["fits"]
    assert result["files"]["read"] in ("warm", "cold", "mixed")
    assert result["machine"]["usable_cores"] >= 1
    assert result["projected_epoch_s"] > 0
    assert "Ultralytics" in proc.stderr or proc.stderr  # logs went to stderr or the log file, never stdout


@pytest.fixture(scope="module")
def messy_dataset(tmp_path_factory) -> Path:
    """A small dataset with one unreadable image and one truncated JPEG, in a folder whose name has a space."""
    root = tmp_path_factory.mktemp("messy") / "my data"
    data = make_dataset(root, n_train=60, n_val=8, size=(96, 64))
    (root / "images" / "train" / "garbage.jpg").write_bytes(b"this is not a jpeg")
    truncated = root / "images" / "train" / "im5.jpg"
    truncated.write_bytes(truncated.read_bytes()[:-2])  # drop the JPEG end marker; still decodable
    return data


def test_probes_never_touch_the_dataset_and_never_share_files(messy_dataset, tmp_path, no_leftovers):
    root = messy_dataset.parent
    before = tree_digest(root)
    workload = Workload(data=str(messy_dataset), epochs=100)
    shared = ProbeOptions(**FAST, scratch=str(tmp_path / "scratch"))
    keep = ProbeOptions(**{**shared.to_dict(), "keep_scratch": True})
    disk = probe(TrainConfig(**TINY, workers=0, cache="disk"), workload, keep)
    assert disk.status == "ok", disk.reason
    assert disk.effective["npy_files"] > 0  # its own .npy files, in its own scratch folder
    ram = probe(TrainConfig(**TINY, workers=0, cache="ram"), workload, shared)
    assert ram.status == "ok", ram.reason
    # a none probe after a disk probe decodes the image files: no .npy beside any image it reads
    none = probe(TrainConfig(**TINY, workers=1, cache="none"), Workload(data=str(messy_dataset), epochs=20000), shared)
    assert none.status == "ok", none.reason
    assert none.effective["npy_files"] == 0
    assert ram.effective["npy_files"] == 0
    assert tree_digest(root) == before  # byte-for-byte, links and folders included
    assert not list(root.rglob("*.npy")) and not list(root.rglob("*.cache"))
    for r in (disk, ram, none):
        assert any("garbage.jpg" in w and "corrupt" in w for w in r.warnings), r.warnings
    # the JPEG without its end marker is either dropped or restored, in the probe's own copy only
    assert any("im5.jpg" in w for w in disk.warnings), disk.warnings
    # the planned run decides the optimizer: 20,000 epochs over 60 images is > 10,000 iterations -> MuSGD
    assert none.effective["optimizer"] == "MuSGD" and disk.effective["optimizer"] == "AdamW"


def test_probe_that_hangs_is_a_timeout(tiny_demo, no_leftovers):
    r = probe(TrainConfig(**TINY, workers=0), Workload(data=str(tiny_demo)), ProbeOptions(timeout_s=2))
    assert r.status == "timeout" and "hard limit" in r.reason
    assert r.stats is None


def test_probe_that_crashes_is_crashed(tiny_demo, tmp_path, no_leftovers):
    broken = tmp_path / "broken.yaml"  # a model YAML Ultralytics loads but cannot build
    broken.write_text("nc: 3\nbackbone:\n  - [-1, 1, NoSuchLayer, [64]]\nhead: []\n")
    r = probe(TrainConfig(**TINY, workers=0), Workload(data=str(tiny_demo), model=str(broken)), ProbeOptions(**FAST))
    assert r.status == "crashed"
    assert r.reason  # one line saying why
    assert Path(r.log_path).exists()


def test_result_roundtrips_through_json(tiny_demo):
    r = probe(TrainConfig(**TINY, workers=0), Workload(data=str(tiny_demo)), ProbeOptions(timeout_s=1))
    again = ProbeResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r


def test_a_resized_source_probe_resizes_only_its_staged_copy(tiny_demo, tmp_path, no_leftovers):
    root = Path(tiny_demo).parent
    before = tree_digest(root)
    options = ProbeOptions(**FAST, scratch=str(tmp_path / "scratch"))
    r = probe(TrainConfig(**TINY, workers=0, source="resized"), Workload(data=str(tiny_demo)), options)
    assert r.status == "ok", r.reason
    c = r.source_cost
    assert c is not None and c.mode == "resized" and c.subset_images > 0
    assert c.full_images == 120 and c.full_s > c.subset_s * 0.9  # extrapolated to the whole dataset
    originals = [p for p in root.rglob("*.jpg")]
    assert c.subset_bytes / c.subset_images < sum(os.path.getsize(p) for p in originals) / len(originals)
    assert tree_digest(root) == before  # the dataset itself is never touched
    assert ProbeResult.from_dict(r.to_dict()).source_cost == c


def test_the_loader_bound_variant_reads_loader_bound_and_a_slow_start_does_not_hide_it(tmp_path):
    """A tiny version of `demo-data --variant loader-bound` (3840x2160 frames: ~60 ms to decode each) trained at
    imgsz 32 waits for its one worker most of the time. With a slow first iteration (a GPU's start-up, simulated:
    the worker fills its prefetch queue meanwhile) the probe still reads the loader's pace, not the model's."""
    from autotune.data.demo import DemoSpec, write_demo_dataset
    from autotune.data.demo_draw import VARIANTS
    from autotune.measure.profile import classify

    w, h = VARIANTS["loader-bound"]
    data = write_demo_dataset(DemoSpec(images=60, width=w, height=h), out=tmp_path / "lb").data_yaml
    config = TrainConfig(batch=2, workers=1, imgsz=32, device="cpu")
    options = ProbeOptions(iters=6, warmup_min=1, warmup_max=10, scratch=str(tmp_path / "scratch"))
    rates = {}
    for delay in (0.0, 4.0):
        r = probe(config, Workload(data=str(data)), replace(options, first_iter_delay_s=delay))
        assert r.ok and r.stats is not None, r.reason
        assert r.stats.stall_fraction > 0.3, r.stats  # well above the 5% that names the loader
        assert classify(r.stats.stall_fraction, r.stats.images_per_s, None, None).verdict == "data-bound"
        assert r.stats.produced is not None and r.stats.produced >= options.iters
        rates[delay] = r.stats.images_per_s
    # with the queue the slow start let fill, the rate stays the loader's (same ballpark, not the model's speed)
    assert rates[4.0] < 1.5 * rates[0.0], rates


def test_a_compiled_probe_measures_after_compiling_and_reports_the_compile_apart(tiny_demo, tmp_path, no_leftovers):
    """torch.compile on the CPU (inductor, the machine's C++ compiler): the compile happens in the first
    iterations, before the window; its seconds and the short last batch's recompile are reported apart. A tiny
    detector (tests/data/tiny_detector.yaml): yolo11n compiles for minutes on 2 cores, this one ~70 s per shape."""
    config = TrainConfig(imgsz=64, batch=7, workers=0, device="cpu", compile="default")
    model = str(Path(__file__).parent / "data" / "tiny_detector.yaml")
    r = probe(config, Workload(data=str(tiny_demo), model=model), ProbeOptions(**FAST, scratch=str(tmp_path)))
    assert r.status == "ok", r.reason
    cc = r.compile_cost
    assert cc is not None and cc.mode == "default"
    assert cc.compile_s > 1.0  # dynamo + inductor compiled the forward and backward graphs
    assert r.stats is not None and cc.first_iter_s > 5 * r.stats.sec_per_iter_median  # compiled before the window
    assert cc.short_batch == r.workload["n_train"] % 7
    assert (cc.recompile_s > 0) == (cc.short_batch > 0)
    assert ProbeResult.from_dict(json.loads(json.dumps(r.to_dict()))).compile_cost == cc
