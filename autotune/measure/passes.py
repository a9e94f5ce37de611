"""Passes a probe times once its training window is full: validation passes (Ultralytics' own validator), and
forward + backward on a batch already on the device (the model side's ceiling), as the trainer's loop runs them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from autotune.measure.ultralytics_glue import autocast_arg

WARM_VAL_PASSES = 3  # a pass of two batches takes ~0.5 s on a 2-core CPU: the median of three steadies it


def measure_val_pass(trainer: Any, cuda: bool, warm: int = WARM_VAL_PASSES) -> dict[str, Any]:
    """Passes of Ultralytics' own validator over the probe's validation subset (two batches at its 2x training
    batch), as the trainer runs it every epoch: EMA model, autocast with AMP on GPU, preprocess, forward, loss,
    NMS, metric updates, then the pass's statistics. The first pass is cold (kernel tuning, first reads): its
    excess over a warm one is a one-time cost. The median of `warm` warm passes is split by the validator's own
    callbacks into per-batch time (loading, then preprocess to metric update) and a per-pass remainder."""
    import torch

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    validator = trainer.validator
    if validator is None:
        raise RuntimeError("the trainer has no validator")
    marks: list[tuple[str, float]] = []

    def mark(event: str) -> Any:
        def callback(_: Any) -> None:
            sync()  # batches end on the device's time, not when the launch returns
            marks.append((event, time.perf_counter()))

        return callback

    events = ("on_val_start", "on_val_batch_start", "on_val_batch_end", "on_val_end")
    added = [(e, mark(e)) for e in events]
    for e, cb in added:
        validator.add_callback(e, cb)
    out: dict[str, Any] = {"val_batch": trainer.test_loader.batch_size}
    try:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        passes: list[Pass] = []
        for _ in range(1 + warm):
            marks.clear()
            sync()
            t0 = time.perf_counter()
            validator(trainer=trainer)
            sync()
            passes.append((time.perf_counter() - t0, list(marks)))
        first_s = passes[0][0]
        median_s, median_marks = median_pass(passes[1:])
        split = split_val_pass(median_marks, median_s)
        if cuda:
            out["val_peak_gpu_bytes"] = int(torch.cuda.max_memory_reserved())
    finally:
        for e, cb in added:
            validator.callbacks[e].remove(cb)
    return {**out, **split, "val_pass_s": median_s, "val_first_pass_s": first_s}


Pass = tuple[float, list[tuple[str, float]]]  # a pass's seconds and its callbacks' (event, time) marks


def median_pass(passes: list[Pass]) -> Pass:
    """The pass of median duration (the upper one of an even count): one disturbed pass does not move it."""
    if not passes:
        raise ValueError("no validation pass to choose from")
    return sorted(passes, key=lambda p: p[0])[len(passes) // 2]


def split_val_pass(marks: list[tuple[str, float]], total_s: float) -> dict[str, Any]:
    """Per-batch compute and loading (means) and the pass's remainder, from one pass's callback times: a batch is
    loaded between the previous mark and its start, computed between its start and end."""
    starts = [t for e, t in marks if e == "on_val_batch_start"]
    ends = [t for e, t in marks if e == "on_val_batch_end"]
    before = [t for e, t in marks if e in ("on_val_start", "on_val_batch_end")]
    if not starts or len(starts) != len(ends) or len(before) < len(starts):
        raise RuntimeError(f"the validation pass ran {len(starts)} batches, {len(ends)} ended: cannot time it")
    compute = [e - s for s, e in zip(starts, ends, strict=True)]
    data = [s - b for s, b in zip(starts, before, strict=False)]
    n = len(starts)
    return {
        "val_batches": n,
        "val_batch_s": sum(compute) / n,
        "val_data_s": sum(data) / n,
        "val_fixed_s": max(total_s - sum(compute) - sum(data), 0.0),
    }


def passes_over(loader: Any) -> Iterator[Any]:
    """The loader's batches, pass after pass (an Ultralytics loader keeps its workers between passes)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise RuntimeError("the validation loader has no batches")


def compute_only(trainer: Any, batch: dict[str, Any], iters: int, cuda: bool) -> dict[str, Any]:
    """Forward + backward on one batch already on the device, as Ultralytics' loop runs them (same AMP, loss
    scaling): the model side's ceiling, with no data loading at all. The optimizer step is not repeated here;
    its cost, timed in the window, is added per iteration by the caller."""
    import torch
    from ultralytics.utils.torch_utils import autocast, unwrap_model

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model = trainer.model
    model.train()
    times = []
    for i in range(iters + 1):  # the first pass is untimed: the window's last batch may differ in shape
        sync()
        t0 = time.perf_counter()
        with autocast(autocast_arg(trainer), device=trainer.device.type):
            if getattr(trainer.args, "compile", False):  # as Ultralytics runs a compiled model: images in, loss apart
                loss, _ = unwrap_model(model).loss(batch, model(batch["img"]))
            else:
                loss, _ = model(batch)
        trainer.scaler.scale(loss.sum()).backward()
        sync()
        if i:
            times.append(time.perf_counter() - t0)
        trainer.optimizer.zero_grad()  # keeps gradients from piling up; the real step is accounted apart
    return {"iters": iters, "fwd_bwd_s": times, "batch": int(batch["img"].shape[0])}
