"""Ultralytics' AutoBatch (batch=-1) as a search seed on a GPU, run in its own subprocess like any probe."""

from __future__ import annotations

from typing import Any

from autotune.measure.dataset import count_objects, load_dataset
from autotune.records.config import Workload


def run_in_subprocess(request: dict[str, Any], heartbeat: Any) -> dict[str, Any]:
    """Build the model on the GPU and ask Ultralytics' check_train_batch_size for its batch."""
    heartbeat({"phase": "autobatch", "eta_s": 120})
    import torch
    from ultralytics import YOLO
    from ultralytics.utils.autobatch import check_train_batch_size

    info = load_dataset(request["data"])
    model = YOLO(request["model"]).model.to(torch.device(f"cuda:{request['device']}"))
    fraction = request.get("fraction") or -1  # -1: Ultralytics' default share of free memory (0.6)
    batch = check_train_batch_size(
        model,
        imgsz=request["imgsz"],
        amp=True,
        batch=fraction,
        max_num_obj=max(count_objects(info.train[:2000]) or [1]),  # the assigner's memory grows with objects
        dataset_size=len(info.train),
    )
    return {"batch": int(batch)}


def autobatch(workload: Workload, imgsz: int, device: str, fraction: float | None = None) -> int | str:
    """AutoBatch's batch size for this model and image size on GPU `device`, or why there is none."""
    from autotune.files import cache_root
    from autotune.measure import isolate

    if device == "cpu":
        return "AutoBatch needs a CUDA GPU"
    request = {"data": workload.data, "model": workload.model, "imgsz": imgsz, "device": device, "fraction": fraction}
    with isolate.scratch_dir(cache_root() / "scratch", "autobatch-") as work:
        policy = isolate.TimeoutPolicy(startup_s=300)
        out = isolate.run_isolated("autotune.search.autobatch:run_in_subprocess", request, work, policy)
    if out.status != "ok" or out.result is None:
        return f"{out.status}: {out.reason}"
    return int(out.result["batch"])
