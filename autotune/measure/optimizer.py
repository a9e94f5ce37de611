"""Which optimizer Ultralytics builds for a run, so a probe pins the full run's choice (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from autotune.records.config import TrainConfig


def planned_iterations(n_train: int, batch: int, nbs: int, epochs: int) -> int:
    """The iteration count Ultralytics feeds its 'auto' optimizer rule: ceil(images / max(batch, nbs)) x epochs."""
    return math.ceil(n_train / max(batch, nbs)) * epochs


@dataclass(frozen=True)
class OptimizerChoice:
    name: str
    lr0: float
    momentum: float
    reason: str


def auto_optimizer(n_train: int, batch: int, nbs: int, epochs: int, nc: int) -> OptimizerChoice:
    """What Ultralytics 8.4's optimizer='auto' picks for the full run (BaseTrainer.build_optimizer).

    A probe trains on a small subset for a moment, so left on 'auto' it would always get AdamW; the full run's
    choice depends on its own length: MuSGD (extra Newton-Schulz work per step) above 10,000 iterations.
    """
    iterations = planned_iterations(n_train, batch, nbs, epochs)
    if iterations > 10000:
        return OptimizerChoice("MuSGD", 0.01, 0.9, f"{iterations} planned iterations > 10000")
    lr_fit = round(0.002 * 5 / (4 + nc), 6)
    return OptimizerChoice("AdamW", lr_fit, 0.9, f"{iterations} planned iterations <= 10000")


def optimizer_args(config: TrainConfig, n_train: int, nc: int, epochs: int) -> tuple[dict[str, Any], str]:
    """The Ultralytics optimizer arguments that pin a config's optimizer for a run of `epochs`, and why.

    'auto' is resolved here, as Ultralytics resolves it for that run (auto_optimizer), and passed explicitly with
    the learning rate, momentum and bias warm-up Ultralytics' own 'auto' sets; a named optimizer passes as it is.
    A probe and the training run it predicts both call this, so they build the same optimizer.
    """
    if config.optimizer != "auto":
        return {"optimizer": config.optimizer}, "as requested"
    choice = auto_optimizer(n_train, config.batch, config.nbs, epochs, nc)
    args = {"optimizer": choice.name, "lr0": choice.lr0, "momentum": choice.momentum, "warmup_bias_lr": 0.0}
    return args, f"auto -> {choice.name} ({choice.reason}, as Ultralytics decides for the full run)"
