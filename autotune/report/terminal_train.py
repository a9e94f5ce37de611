"""Terminal lines of `autotune train` (the prediction, each epoch against it, the summary) and of
`autotune resize`. They only format the records they are given."""

from __future__ import annotations

from typing import Any

from autotune.records.run import EpochRecord, TrainRun, relative_error
from autotune.train.predict import EpochPlan, RunPrediction
from autotune.train.run import headline_metrics
from autotune.units import fmt_bytes, fmt_s


def _sec(s: float | None) -> str:
    """Seconds as the epoch lines print them: '412 s', '3.4 s'; minutes and hours past 10 minutes."""
    if s is None:
        return "n/a"
    if s >= 600:
        return fmt_s(s)
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def _pct(e: float | None) -> str:
    return "" if e is None else f", {e:+.1%}"


def train_epoch_line(r: EpochRecord) -> str:
    """One line per epoch: 'epoch 3/50  train 412 s (predicted 398 s, +3.5%)  val 31 s (predicted 29 s)  123.4
    images/s  [mosaic]'."""
    width = len(str(r.epochs))
    parts = [f"epoch {r.epoch:>{width}}/{r.epochs}"]
    train = f"train {_sec(r.train_s)}"
    if r.predicted_train_s:
        train += f" (predicted {_sec(r.predicted_train_s)}{_pct(r.train_error)})"
    parts.append(train)
    if r.val_s is not None:
        val = f"val {_sec(r.val_s)}"
        if r.predicted_val_s:
            val += f" (predicted {_sec(r.predicted_val_s)})"
        parts.append(val)
    parts.append(f"{r.images_per_s:.1f} images/s")
    m = headline_metrics(r.metrics)
    if "mAP50-95" in m:
        parts.append(f"mAP50-95 {m['mAP50-95']:.3f}")
    label = r.phase or ("mosaic" if r.mosaic else "no mosaic" if r.mosaic is False else "")
    return "  ".join(parts) + (f"  [{label}]" if label else "")


def train_off_warning(r: EpochRecord, causes: list[str]) -> str:
    """The warning for an epoch whose training was more than the tolerance off its prediction."""
    e = r.train_error or 0.0
    side = "slower" if e > 0 else "faster"
    return f"epoch {r.epoch}: training {abs(e):.0%} {side} than predicted; likely: " + "; ".join(causes)


def train_prediction_lines(p: RunPrediction, setup_s: float) -> list[str]:
    """The plan before the first epoch: setup, then runs of epochs with the same phase, and the total."""
    lines = [
        f"setup {_sec(setup_s)} (predicted: cache build {_sec(p.setup_s)}; model build and dataset scan not measured)"
    ]
    groups: list[list[EpochPlan]] = []
    for e in p.epochs:
        if groups and groups[-1][-1].phase == e.phase and groups[-1][-1].val_s == e.val_s:
            groups[-1].append(e)
        else:
            groups.append([e])
    for g in groups:
        span = f"epoch {g[0].epoch}" if len(g) == 1 else f"epochs {g[0].epoch}-{g[-1].epoch}"
        train = sum(e.train_s for e in g) / len(g)
        steps = sum(e.steps for e in g) / len(g)
        each = "" if len(g) == 1 else " each"
        val = f" + val {_sec(g[0].val_s)}" if g[0].val_s is not None else ""
        lines.append(f"  {span} [{g[0].phase}]: train {_sec(train)}{val}{each} ({steps:.0f} optimizer steps)")
    if p.final_val_s is not None:
        lines.append(f"  final validation of best.pt {_sec(p.final_val_s)}")
    n = len(p.epochs)
    lines.append(f"predicted: {fmt_s(p.total_s)} for {n} epoch{'s' if n != 1 else ''}")
    lines += [f"note: {n}" for n in p.notes]
    return lines


def train_summary(run: TrainRun) -> str:
    """The end: epochs done, total time against the prediction for those epochs, and the final metrics."""
    done = len(run.records)
    parts = [f"{run.status}: {done}/{run.epochs} epochs in {fmt_s(run.actual_s)}"]
    if run.predicted_s:
        err = relative_error(run.predicted_parts_s, run.predicted_s)
        parts.append(
            f"predicted {fmt_s(run.predicted_s)} for what took {fmt_s(run.predicted_parts_s)}{_pct(err)}, "
            f"plus {fmt_s(run.unpredicted_s)} nothing predicts (model build, dataset scan, checkpoints)"
        )
    metrics = headline_metrics(run.final_metrics or (run.records[-1].metrics if run.records else {}))
    if metrics:
        parts.append("  ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k in ("mAP50", "mAP50-95")))
    parts.append(f"run folder {run.save_dir}")
    return "; ".join(parts)


def _some(paths: tuple[str, ...], most: int = 10) -> str:
    """The first few paths, and how many more."""
    return ", ".join(paths[:most]) + (f" and {len(paths) - most} more" if len(paths) > most else "")


def resize_lines(result: Any, loaders: dict[str, Any], config: Any) -> list[tuple[str, str | None]]:
    """`autotune resize`'s summary lines (text, style): skipped and full-size images, the copy, loader-only rates."""
    out: list[tuple[str, str | None]] = []
    if result.corrupt:
        out.append((f"warning: skipped {len(result.corrupt)} unreadable image(s): {_some(result.corrupt)}", "yellow"))
    if result.kept:
        out.append(
            (f"warning: {len(result.kept)} image(s) copied at full size (format not writable): {_some(result.kept)}",
             "yellow")
        )  # fmt: skip
    ratio = result.source_bytes / result.copy_bytes if result.copy_bytes else float("inf")
    out.append(
        (
            f"{result.images} images at imgsz {result.imgsz}: {result.resized} resized, {result.as_is} copied as they "
            f"are, {result.already} already there; {result.seconds:.1f} s on {result.processes} process(es); image "
            f"bytes {fmt_bytes(result.source_bytes)} -> {fmt_bytes(result.copy_bytes)} ({ratio:.1f}x smaller); "
            f"{result.out}",
            None,
        )
    )
    for name, r in loaders.items():
        said = f"{r.images_per_s:,.1f} images/s" if r.images_per_s else f"{r.status}: {r.reason}"
        out.append((f"loader-only, {name}: {said} ({config.label()})", None))
    rates = {k: r.images_per_s for k, r in loaders.items()}
    if rates.get("original") and rates.get("resized"):
        out.append((f"resized / original: {rates['resized'] / rates['original']:.2f}x", None))
    return out


class TrainPrinter:
    """`autotune train`'s events as lines: the prediction, each epoch against it, warnings, the final validation.

    `out` prints to stdout (the run's record), `say(text, style)` to stderr (notes and warnings)."""

    def __init__(self, out: Any, say: Any) -> None:
        self.out, self.say = out, say

    def note(self, text: str) -> None:
        self.say(text, "yellow" if text.startswith("warning:") else "dim")

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "start":
            if data["prediction"] is not None:
                for line in train_prediction_lines(data["prediction"], data["setup_s"]):
                    self.out(line, style="dim" if line.startswith(("  ", "note")) else None)
            else:
                self.out(f"setup {data['setup_s']:.0f} s; no prediction (nothing measured)")
        elif kind == "epoch":
            self.out(train_epoch_line(data["record"]), style="bold")
            if data["causes"]:
                self.say(f"warning: {train_off_warning(data['record'], data['causes'])}", "yellow")
        elif kind == "final":
            run = data["run"]
            predicted = f" (predicted {run.predicted_final_val_s:.1f} s)" if run.predicted_final_val_s else ""
            self.out(f"final validation of best.pt {run.final_val_s:.1f} s{predicted}")
        elif kind == "warning":
            self.say(f"warning: {data['text']}", "yellow")
