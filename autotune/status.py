"""The one failure policy: how an error becomes a status, and what each status means for the sampler, the batch
ladder, the factor table and the terminal. Everything that asks "what does this status mean?" asks here."""

from __future__ import annotations

from typing import Literal

from autotune.records.status import CRASHED, INFEASIBLE, OK, OOM, OVER_LIMIT, PRUNED, SKIPPED, TIMEOUT, Status

# The config does not fit in memory: a wall the sampler must learn (the memory constraint), the ladder must not
# climb past, and a chart marks.
MEMORY_WALL: frozenset[str] = frozenset({OOM, OVER_LIMIT})
# The config cannot run here as asked: a lever that ends like this "cannot be changed alone".
CANNOT_RUN: frozenset[str] = frozenset({OOM, OVER_LIMIT, INFEASIBLE, SKIPPED})
# The measurement says nothing about the config (it may well run): measure it again when it is needed.
SAYS_NOTHING: frozenset[str] = frozenset({CRASHED, TIMEOUT, PRUNED})

SamplerState = Literal["complete", "pruned", "fail"]


def classify_exception(e: BaseException) -> tuple[Status, str]:
    """(status, one-line reason) of an exception raised while measuring: the exception's type decides, with the
    few messages torch and its loader use for an OOM or a dead worker."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = f"{type(e).__name__}: {first}".strip().rstrip(":")
    text = str(e).lower()
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "out of memory" in text:
        return OOM, msg
    if "dataloader worker" in text and ("killed" in text or "exited unexpectedly" in text):
        return CRASHED, f"a data loader worker died ({msg})"
    return CRASHED, msg


def sampler_state(status: str) -> SamplerState:
    """How a trial with this status ends in Optuna: a crash is a FAIL (nothing learnt about the config), a pruned
    probe is PRUNED, everything else COMPLETE (feasible or not: the sampler learns where the walls are)."""
    if status == CRASHED:
        return "fail"
    if status == PRUNED:
        return "pruned"
    return "complete"


def constraint_values(status: str) -> tuple[float, float]:
    """(memory, other) constraint values of a trial that did not measure ok (> 0: violated)."""
    if status in MEMORY_WALL:
        return 1.0, 0.0
    return 0.0, 1.0


def is_ok(status: str) -> bool:
    return status == OK


def exit_code(status: str) -> int:
    """`autotune probe`'s exit code: 0 measured ok, 1 measured but not ok (bad input is 2, decided earlier)."""
    return 0 if status == OK else 1


TERMINAL_STYLE: dict[str, str] = {
    OK: "bold green",
    OOM: "bold red",
    OVER_LIMIT: "bold red",
    TIMEOUT: "bold yellow",
}


def terminal_style(status: str) -> str:
    return TERMINAL_STYLE.get(status, "bold red")
