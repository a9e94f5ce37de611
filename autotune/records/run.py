"""A training run as autotune records it: its epochs with their predictions, its sessions (one per --resume)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


def relative_error(actual: float, predicted: float) -> float | None:
    """actual / predicted - 1: +0.10 is 10% slower than predicted; None without a prediction."""
    return actual / predicted - 1 if predicted > 0 else None


def _from_dict(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch: what it took, what was predicted, and the metrics of its validation. Seconds."""

    epoch: int  # 1-based, as Ultralytics prints it
    epochs: int
    phase: str  # the predicted phase ("warm-up, mosaic", "mosaic", "no mosaic"); "" without a prediction
    mosaic: bool | None  # as the loader ran it
    train_s: float  # on_train_epoch_start -> on_train_epoch_end
    val_s: float | None  # trainer.validate; None when Ultralytics skipped validation
    other_s: float  # the rest until on_fit_epoch_end: checkpoints, EMA attributes, CSV
    images: int
    predicted_train_s: float | None = None
    predicted_val_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    session: int = 0  # index into TrainRun.sessions

    @property
    def images_per_s(self) -> float:
        return self.images / self.train_s if self.train_s > 0 else 0.0

    @property
    def train_error(self) -> float | None:
        """actual / predicted - 1 for the training part."""
        return relative_error(self.train_s, self.predicted_train_s) if self.predicted_train_s else None

    @property
    def val_error(self) -> float | None:
        if self.val_s is None or not self.predicted_val_s:
            return None
        return relative_error(self.val_s, self.predicted_val_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "images_per_s": self.images_per_s,
            "train_error": self.train_error,
            "val_error": self.val_error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochRecord:
        return cls(**_from_dict(cls, d))


@dataclass(frozen=True)
class Session:
    """One process's part of a run: the first, and one per --resume."""

    started: str
    start_epoch: int = 0  # 0-based first epoch of this session
    setup_s: float | None = None  # from the start of training to the first epoch: model, dataset scan, cache build
    predicted_setup_s: float | None = None  # the measured part of it: the cache build
    status: str = "running"  # running | finished | interrupted | crashed
    reason: str = ""
    ended: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Session:
        return cls(**_from_dict(cls, d))


@dataclass(frozen=True)
class TrainRun:
    """A training run as autotune recorded it; what a report reads to set predicted against actual."""

    id: str
    source: str  # "study NAME, trial N" or "profile PATH"
    study: str | None
    trial: int | None
    profile: str | None
    config: dict[str, Any]  # TrainConfig as trained
    args: dict[str, Any]  # the Ultralytics arguments
    optimizer: str  # the optimizer class Ultralytics built
    rates: dict[str, Any]  # predict.Rates: what the prediction drew on
    machine: dict[str, Any]
    save_dir: str = ""  # Ultralytics' run folder
    epochs: int = 0
    prediction: dict[str, Any] | None = None  # predict.RunPrediction of the latest session
    records: tuple[EpochRecord, ...] = ()
    sessions: tuple[Session, ...] = ()
    final_val_s: float | None = None  # Ultralytics' validation of best.pt after the last epoch
    predicted_final_val_s: float | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    val_every: int = 1  # validated after every k-th epoch and the last (autotune's own; Ultralytics has none)
    val_batch: int | None = None  # validation batch; None: Ultralytics' 2x the training batch

    @property
    def status(self) -> str:
        return self.sessions[-1].status if self.sessions else "new"

    @property
    def last_pt(self) -> Path:
        return Path(self.save_dir) / "weights" / "last.pt"

    @property
    def actual_s(self) -> float:
        """Wall time of everything recorded: setups, epochs (training, validation, the rest), final validation."""
        setups = sum(s.setup_s or 0.0 for s in self.sessions)
        return setups + sum(r.train_s + (r.val_s or 0.0) + r.other_s for r in self.records) + (self.final_val_s or 0)

    @property
    def predicted_s(self) -> float | None:
        """The prediction for what ran (the same epochs); None where nothing was predicted."""
        if not any(r.predicted_train_s for r in self.records):
            return None
        setups = sum(s.predicted_setup_s or 0.0 for s in self.sessions)
        epochs = sum((r.predicted_train_s or 0.0) + (r.predicted_val_s or 0.0) for r in self.records)
        final = self.predicted_final_val_s if self.final_val_s is not None else None
        return setups + epochs + (final or 0.0)

    @property
    def unpredicted_s(self) -> float:
        """Recorded time no probe measured: setup beyond the cache build, checkpoint saving between epochs."""
        setup = sum(max((s.setup_s or 0.0) - (s.predicted_setup_s or 0.0), 0.0) for s in self.sessions)
        return setup + sum(r.other_s for r in self.records)

    @property
    def predicted_parts_s(self) -> float:
        """What the predicted parts actually took (actual minus what nothing predicted): compare with predicted_s."""
        return self.actual_s - self.unpredicted_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["records"] = [r.to_dict() for r in self.records]
        d["sessions"] = [s.to_dict() for s in self.sessions]
        d["status"] = self.status
        d["actual_s"] = self.actual_s
        d["predicted_s"] = self.predicted_s
        d["unpredicted_s"] = self.unpredicted_s
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainRun:
        base = _from_dict(cls, d)
        base["records"] = tuple(EpochRecord.from_dict(r) for r in d.get("records", ()))
        base["sessions"] = tuple(Session.from_dict(s) for s in d.get("sessions", ()))
        base["warnings"] = tuple(d.get("warnings", ()))
        base["notes"] = tuple(d.get("notes", ()))
        return cls(**base)
