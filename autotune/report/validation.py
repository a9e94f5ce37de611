"""The validation share of a run and what validating less often saves: plain data from the winner's measurement,
rendered by documents.py and terminal.py."""

from __future__ import annotations

from autotune.records.probe import validation_passes
from autotune.report.data import Side, ValEvery, ValidationSummary

EVERY = (1, 2, 5, 10)  # --val-every values shown; Ultralytics validates every epoch (1)


def validation_summary(winner: Side, epochs: int) -> ValidationSummary | None:
    """None where the winner's validation pass was not measured."""
    if winner.epoch_val_s is None:
        return None
    every_epoch = validation_passes(epochs) * winner.epoch_val_s
    options = []
    for k in EVERY:
        if k > 1 and k >= epochs:
            break  # only the last epoch validates from here on: the same as val=False
        n = validation_passes(epochs, k)
        options.append(ValEvery(k, n, n * winner.epoch_val_s, every_epoch - n * winner.epoch_val_s))
    return ValidationSummary(winner.val_batch, winner.epoch_val_s, winner.epoch_train_s, epochs, tuple(options))


def validation_words(v: ValidationSummary) -> list[str]:
    """Sentences for the report: the share, then what each --val-every saves and what it changes."""
    batch = f"at batch {v.batch}" if v.batch else "at the measured batch"
    share = f" ({v.share:.0%} of an epoch that validates)" if v.share is not None else ""
    out = [f"one validation pass {batch} takes {v.pass_s:.1f} s{share}; Ultralytics validates after every epoch"]
    for o in v.options[1:]:
        out.append(
            f"--val-every {o.every}: {o.passes} passes in {v.epochs} epochs ({o.val_s:.0f} s), saves {o.saved_s:.0f} s"
        )
    if len(v.options) > 1:
        out.append(
            "validating less often: early stopping and best.pt only see the epochs that validate (patience counts "
            "epochs, so it may stop up to k-1 epochs later); `autotune train --best --val-every k`"
        )
    out.append("--val-batch N validates at another batch (memory permitting); autotune train measures it first")
    return out
