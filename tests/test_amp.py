"""Mixed precision as a measured factor: on a GPU, the baseline in FP32 and in bfloat16 against Ultralytics'
default FP16 AMP; on a CPU, absent with the reason. Hand-picked numbers, no GPU needed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autotune.errors import UserError
from autotune.measure.request import ProbeRequest, resolve
from autotune.records.config import TrainConfig
from autotune.report.build import build
from autotune.search import levers
from tests.test_report import BASE, META, WIN, result, snapshot

GPU_BASE = BASE.with_(device="0")
GPU_WIN = WIN.with_(device="0")


def test_amp_configs_are_checked():
    assert TrainConfig(device="0", amp="bf16").label().endswith(" amp=bf16")
    assert TrainConfig(amp=False).label().endswith(" amp=off") and "amp" not in TrainConfig().label()
    with pytest.raises(UserError, match="amp must be on"):
        TrainConfig(amp="fp8")
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        TrainConfig(device="cpu", amp="bf16")
    with pytest.raises(UserError, match="cannot go with --no-amp"):
        resolve(ProbeRequest(amp=False, bf16=True), lambda d: "/nowhere")
    assert TrainConfig.from_dict(TrainConfig(amp=False).to_dict()).amp is False


def test_gpu_studies_probe_fp32_and_bf16_against_amp():
    probes = levers.lever_probes(GPU_BASE, GPU_WIN, "AdamW")
    amp, bf16 = probes[-2:]
    assert (amp.lever, amp.config, amp.before, amp.after) == ("amp", GPU_BASE.with_(amp=False), "FP32", "AMP (FP16)")
    assert (bf16.lever, bf16.config) == ("bf16", GPU_BASE.with_(amp="bf16"))
    assert not {"amp", "bf16"} & {p.lever for p in levers.lever_probes(BASE, WIN, "AdamW")}  # a CPU: no probe


def test_amp_factor_reads_fp32_to_amp_and_stays_out_of_the_product():
    snap = snapshot({"imgsz": 36.0, "batch": 24.0, "cache": 30.0, "optimizer": 20.5})
    gpu_meta = replace(META, baseline=GPU_BASE)
    base, win = result(GPU_BASE, 20.0, created="b0"), result(GPU_WIN, 45.0)
    lever_results = {p.config: (result(p.config, ips),) for p, ips in zip(
        levers.lever_probes(GPU_BASE, GPU_WIN, "AdamW"), (36.0, 24.0, 30.0, 20.5, 8.2, 24.6), strict=True)}  # fmt: skip
    trials = tuple(
        replace(t, config=(GPU_BASE if t.number == 0 else GPU_WIN).to_dict()) for t in snap.trials if t.number < 2
    )
    end = result(GPU_BASE, 21.0, created="b1")
    gpu = replace(snap, meta=gpu_meta, results={0: base, 1: win}, baseline=base, baseline_end=end, trials=trials,
                  lever_results=lever_results)  # fmt: skip
    d = build(gpu)
    rows = {r.lever: r for r in d.factors}
    # the baseline (AMP) runs 20.5 images/s on average, 8.2 in FP32: FP32 -> AMP is 2.5x, against NVIDIA's 3x
    assert rows["amp"].measured == pytest.approx(20.5 / 8.2) and rows["amp"].naive == 3.0
    assert rows["bf16"].measured == pytest.approx(24.6 / 20.5) and rows["bf16"].naive is None
    cpu = build(snap)
    searched = [r for r in d.factors if r.lever in levers.LEVERS]
    assert d.measured_product == pytest.approx(cpu.measured_product)  # mixed precision is not a searched lever
    assert len(searched) == 3


def test_a_cpu_study_says_why_mixed_precision_is_absent():
    d = build(snapshot({"imgsz": 36.0, "batch": 24.0, "cache": 30.0, "optimizer": 20.5}))
    (amp,) = [r for r in d.factors if r.lever == "amp"]
    assert amp.state == "absent on a CPU" and amp.measured is None and "FP32 on a CPU" in amp.note
    assert "amp" not in d.missing  # nothing to measure later either
