"""Passes a probe times by hand once its training window is full: one validation batch, and forward + backward on a
batch already on the device (the model side's ceiling). Both run on Ultralytics' own trainer, as its loops do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any


def measure_val_batch(trainer: Any, cuda: bool) -> dict[str, Any]:
    """One validation batch (2x the training batch) as Ultralytics' validator runs it: EMA model, FP16 with AMP
    on GPU, forward and NMS. The first batch is untimed: it starts the loader's workers and tunes kernels, a
    one-time cost (val_first_s). The second is timed warm; a one-batch loader is read again for it, as every
    epoch's validation reads it again (its files then sit in the page cache, as they would)."""
    import torch
    from ultralytics.utils import nms

    device = trainer.device
    model = trainer.ema.ema if trainer.ema else trainer.model
    half = cuda and trainer.amp
    model = model.half() if half else model.float()
    model.eval()
    loader = trainer.test_loader
    batches = passes_over(loader)
    out: dict[str, Any] = {"val_batch": loader.batch_size}
    for k in range(2):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            img = batch["img"].to(device, non_blocking=cuda)
            img = (img.half() if half else img.float()) / 255
            preds = model(img)
            nms.non_max_suppression(
                preds, 0.001, 0.7, multi_label=True, max_det=300, end2end=getattr(model, "end2end", False)
            )
        if cuda:
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if k == 0:
            out["val_first_s"] = t2 - t0
        if k == 1:
            out.update(val_data_s=t1 - t0, val_batch_s=t2 - t1)
        if cuda:
            out["val_peak_gpu_bytes"] = max(out.get("val_peak_gpu_bytes", 0), int(torch.cuda.max_memory_reserved()))
    return out


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
        with autocast(trainer.amp, device=trainer.device.type):
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
