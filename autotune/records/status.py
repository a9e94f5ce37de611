"""The statuses a measurement can end with: their names only (what each means is autotune.status's business)."""

from __future__ import annotations

from typing import Literal

Status = Literal["ok", "oom", "over_limit", "timeout", "crashed", "infeasible", "pruned", "skipped"]

OK: Status = "ok"  # measured
OOM: Status = "oom"  # out of memory (CUDA, the allocator's limit, or the kernel's OOM killer)
OVER_LIMIT: Status = "over_limit"  # ran, but its peak memory is over the user's limit
TIMEOUT: Status = "timeout"  # no progress within its predicted time, or past a hard limit
CRASHED: Status = "crashed"  # an exception, a signal, a dead loader worker
INFEASIBLE: Status = "infeasible"  # cannot run as asked here (Ultralytics changed a setting, no CUDA, no room)
PRUNED: Status = "pruned"  # stopped early by a search: clearly slower than the best so far
SKIPPED: Status = "skipped"  # not probed: predicted not to fit (cache rule, memory model)

ALL: tuple[Status, ...] = (OK, OOM, OVER_LIMIT, TIMEOUT, CRASHED, INFEASIBLE, PRUNED, SKIPPED)
