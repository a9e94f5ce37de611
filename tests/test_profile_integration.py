"""A real profile on a tiny workload: loader-only runs, the cache bench, the verdict and the charts."""

import json

import pytest

from autotune.measure.profile import profile
from autotune.records.config import ProbeOptions, TrainConfig, Workload
from autotune.report.profile_files import save

pytestmark = pytest.mark.integration


def test_profile_on_a_tiny_workload(tiny_demo, tmp_path):
    config = TrainConfig(imgsz=64, batch=4, workers=1, device="cpu")
    options = ProbeOptions(iters=4, warmup_min=1, warmup_max=10, scratch=str(tmp_path / "scratch"))
    p = profile(config, Workload(data=str(tiny_demo)), options, workers=[0, 1])
    assert p.probe.status == "ok", p.probe.reason
    assert p.diagnosis is not None and p.diagnosis.verdict in ("data-bound", "compute-bound", "balanced")
    assert p.compute_only_ips and p.compute_only_ips > 0
    assert [s.workers for s in p.scaling] == [0, 1]
    assert all(s.status == "ok" and s.images_per_s > 0 for s in p.scaling), p.scaling
    assert p.diagnosis.loader_ips == p.scaling[1].images_per_s
    bench = p.cache
    assert bench is not None, p.cache_error
    assert {(r.mode, r.state) for r in bench.reads} == {
        ("none", "cold"),
        ("none", "warm"),
        ("disk", "cold"),
        ("disk", "warm"),
        ("ram", "memory"),
        ("resized", "cold"),
        ("resized", "warm"),
    }
    ram = bench.read("ram", "memory")
    assert ram.per_image_s < bench.read("none", "warm").per_image_s  # memory beats decoding a JPEG
    disk_build = next(b for b in bench.builds if b.mode == "disk")
    assert disk_build.full_bytes > disk_build.sample_bytes  # extrapolated to train + val
    assert disk_build.full_images == 120  # the tiny demo: 96 train + 24 val
    util = p.probe.extras["utilisation"]
    assert util["samples"] >= max(1, 0.5 * util["seconds"] / util["interval_s"])  # ~10 a second
    assert util["gpu_util_mean"] is None
    written = save(p, tmp_path / "report")
    assert {f.name for f in written} == {"profile.json", "iterations.png", "workers.png", "cache.png"}
    assert all(f.stat().st_size > 1000 for f in written)
    data = json.loads((tmp_path / "report" / "profile.json").read_text())
    assert data["diagnosis"]["verdict"] == p.diagnosis.verdict
