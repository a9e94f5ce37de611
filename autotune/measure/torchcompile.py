"""torch.compile in a probe: can it run here, did Ultralytics really compile, and what did compiling cost.

Ultralytics (8.4, `compile=`) checks the inductor's prerequisites and, where one is missing or torch.compile fails,
logs a warning and trains uncompiled: a probe that trusted it would measure the uncompiled model under the compiled
label. So the probe checks the same prerequisites first (a status with the reason, not a log line) and checks the
model it trains after set-up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from autotune.measure.ultralytics_glue import autocast_arg


def unavailable(device: str) -> str | None:
    """Why inductor cannot compile for `device` on this machine, or None (as Ultralytics' attempt_compile checks)."""
    import torch

    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        if device == "cpu":
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()  # raises where no C++ compiler is found
        else:
            from torch.utils._triton import has_triton

            if not has_triton():
                return "no working Triton for this GPU: inductor needs it (GPUs below compute capability 7.0 lack it)"
    except ImportError:  # a torch without these checks: torch.compile itself decides, at the first iteration
        return None
    except Exception as e:  # the compiler check's own error is the reason
        first = str(e).strip().splitlines()
        return f"inductor cannot compile on this machine: {first[0] if first else type(e).__name__}"
    return None


def private_cache(folder: Path) -> None:
    """Compile into an empty cache of this probe's own. Inductor keeps compiled graphs on disk (by default under
    /tmp/torchinductor_<user>) and reuses them: on this 2-core CPU yolo11n compiled in 159 s cold and 8 s from an
    earlier probe's cache. A probe measures what the full run pays, a cold compile (it has its own graphs), and
    the next probe must not depend on which ran before it."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")


def is_compiled(model: Any) -> bool:
    """torch.compile wraps the module in an OptimizedModule, which keeps the original as `_orig_mod`."""
    return hasattr(model, "_orig_mod")


def compile_seconds() -> float | None:
    """Seconds dynamo and inductor spent compiling in this process so far (forward and backward graphs); None
    where this torch does not keep the count."""
    try:
        from torch._dynamo.utils import calculate_time_spent
    except ImportError:
        return None
    try:
        return float(calculate_time_spent().get("total_wall_time", 0.0))
    except (AttributeError, TypeError, ValueError):
        return None


def short_batch(n_train: int, batch: int) -> int:
    """Images in an epoch's last batch where it is short (Ultralytics keeps it), else 0."""
    return n_train % batch if batch > 0 else 0


def time_short_batch(trainer: Any, last_batch: dict[str, Any], n: int, cuda: bool) -> float:
    """Seconds of one forward and backward pass of the trained (compiled) model on the first `n` images of a
    batch (already preprocessed: on the device, scaled), under the run's autocast: a new shape, so torch.compile
    compiles once more, as the epoch's short last batch makes it. The loss is left out (Ultralytics computes it
    outside the compiled module); the gradients are dropped afterwards (nothing trains on them)."""
    import torch
    from torch.utils._pytree import tree_leaves
    from ultralytics.utils.torch_utils import autocast

    img = last_batch["img"][:n]
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with autocast(autocast_arg(trainer), device=trainer.device.type):
        preds = trainer.model(img)
    leaves = [t for t in tree_leaves(preds) if isinstance(t, torch.Tensor) and t.requires_grad]
    if leaves:
        torch.stack([t.float().sum() for t in leaves]).sum().backward()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    trainer.optimizer.zero_grad()
    return seconds
