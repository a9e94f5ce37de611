"""A training run predicted phase by phase from what the probes measured (pure: numbers in, numbers out).

An epoch is not one number (DESIGN.md, "Predicting a run"):

- setup, before the first epoch: building the image cache (measured by the probe on its subset, extrapolated);
- the first epoch of a session, and the epoch where mosaic closes (Ultralytics restarts the loader's workers
  there): the extra seconds of a probe's first iterations over its steady ones (worker start-up, first batches);
- warm-up epochs (`warmup_epochs`): accumulation ramps up from 1, so the optimizer steps more often; the step
  count of every epoch is simulated exactly as Ultralytics' loop runs it, and each step costs what was measured;
- mosaic epochs at the mosaic probe's rate, the last `close_mosaic` epochs at a no-mosaic probe's rate;
- validation after each epoch (every k-th with --val-every, only the last with val=False): the measured seconds per
  validation batch (2x the training batch, or --val-batch) times the batches, plus the pass's own remainder, plus
  the first pass's extra once per session; and once more at the end, when Ultralytics validates best.pt.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from autotune.records.probe import ProbeResult, ValRate, val_seconds, validates_after


@dataclass(frozen=True)
class PhaseRate:
    """One probe reduced to what a prediction needs. Seconds."""

    iter_s: float  # data wait + forward + backward of one iteration at the full batch (mean), without the step
    step_s: float  # one optimizer step (median of the steady ones)
    batch: int
    startup_s: float = 0.0  # the probe's first iterations took this much longer than steady ones would have
    compile_s: float = 0.0  # torch.compile, once per session: the first iterations' compile and the short batch's

    @property
    def images_per_s(self) -> float:
        """The steady rate at a given accumulation is batch / (iter_s + step_s / accumulate); this is without steps."""
        return self.batch / self.iter_s if self.iter_s > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhaseRate:
        return cls(**d)

    @classmethod
    def from_result(cls, r: ProbeResult) -> PhaseRate:
        """The rates of a finished probe; raises ValueError for one without a measurement."""
        if r.stats is None:
            raise ValueError(f"probe {r.status} has no measurement")
        s = r.stats
        iter_s = s.data_wait_mean_s + s.compute_mean_s
        cc = r.compile_cost
        # the first iterations' excess holds the compile: counted once per session, not at every loader restart
        startup = max(startup_excess(r.timings, iter_s) - (cc.compile_s if cc else 0.0), 0.0)
        return cls(iter_s=iter_s, step_s=s.step_s, batch=s.batch, startup_s=startup,
                   compile_s=cc.one_time_s if cc else 0.0)  # fmt: skip


def startup_excess(timings: dict[str, Any], steady_iter_s: float) -> float:
    """Seconds the discarded warm-up iterations took beyond as many steady iterations (never negative).

    The probe's iteration times exclude the optimizer step (timed apart), so this is loader start-up and first
    batches only.
    """
    n = int(timings.get("warmup") or 0)
    waits, computes = timings.get("data_wait_s") or [], timings.get("compute_s") or []
    first = [w + c for w, c in zip(waits[:n], computes[:n], strict=False)]
    return max(sum(first) - len(first) * steady_iter_s, 0.0)


@dataclass(frozen=True)
class RunShape:
    """The run as Ultralytics will run it: sizes and the schedule settings that decide each epoch's phase."""

    n_train: int
    n_val: int
    batch: int
    epochs: int
    nbs: int = 64
    warmup_epochs: float = 3.0
    close_mosaic: int = 10
    val: bool = True  # validate every epoch; False: only the last (Ultralytics always validates the final epoch)
    start_epoch: int = 0  # first epoch of this session, 0-based (a resumed run starts later)
    val_every: int = 1  # with val: after every k-th epoch and the last (autotune train --val-every)

    def validates(self, epoch: int) -> bool:
        """Whether Ultralytics validates after `epoch` (0-based); it always validates the last."""
        return validates_after(epoch, self.epochs, self.val_every, self.val)

    @property
    def iterations(self) -> int:
        """Batches per epoch (the last one may be short: Ultralytics does not drop it)."""
        return math.ceil(self.n_train / self.batch)

    @property
    def close_epoch(self) -> int | None:
        """First epoch (0-based) without mosaic, or None when mosaic stays on."""
        return max(self.epochs - self.close_mosaic, 0) if self.close_mosaic else None

    def mosaic(self, epoch: int) -> bool:
        c = self.close_epoch
        return c is None or epoch < c

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunShape:
        return cls(**d)


def warmup_iterations(shape: RunShape) -> int:
    """Ultralytics' BaseTrainer._get_warmup_iterations: warm-up leaves at least the last epoch alone."""
    w = min(shape.warmup_epochs, max(shape.epochs - 1, 0))
    return round(w * shape.iterations) if w > 0 else 0


def optimizer_steps(shape: RunShape) -> list[int]:
    """Optimizer steps in each epoch from shape.start_epoch on, simulating Ultralytics' training loop.

    accumulate = max(round(nbs / batch), 1), capped at the run's iterations; during warm-up (iteration ni <= nw)
    it ramps as max(1, round(interp(ni, [0, nw], [1, accumulate]))); a step runs when ni - last_step >= accumulate
    (last_step starts at -1 in every session, resumed or not).
    """
    nb = shape.iterations
    acc0 = min(max(round(shape.nbs / shape.batch), 1), nb * shape.epochs)
    nw = warmup_iterations(shape)
    slope = (acc0 - 1) / nw if nw else 0.0
    last, acc, out = -1, acc0, []
    for epoch in range(shape.start_epoch, shape.epochs):
        steps = 0
        for i in range(nb):
            ni = i + nb * epoch
            if nw and ni <= nw:  # np.interp's arithmetic, then round half to even as numpy's round does
                acc = max(1, round(acc0 if ni == nw else slope * ni + 1))
            if ni - last >= acc:
                steps += 1
                last = ni
        out.append(steps)
    return out


@dataclass(frozen=True)
class EpochPlan:
    epoch: int  # 1-based, as Ultralytics prints it
    phase: str  # "warm-up", "mosaic" or "no mosaic"; warm-up epochs are also one of the other two
    mosaic: bool
    iterations: int
    steps: int  # optimizer steps
    one_time_s: float  # loader start-up in the first epoch of a session and where mosaic closes (in train_s)
    train_s: float
    val_s: float | None  # None: no validation after this epoch, or nothing measured to predict it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochPlan:
        return cls(**d)


@dataclass(frozen=True)
class RunPrediction:
    shape: RunShape
    setup_s: float  # one-time work before the first epoch that was measured: the image cache build
    epochs: tuple[EpochPlan, ...]  # from shape.start_epoch on
    final_val_s: float | None  # Ultralytics validates best.pt once more after the last epoch
    notes: tuple[str, ...] = field(default_factory=tuple)  # what was missing and what stood in for it

    @property
    def total_s(self) -> float:
        return self.setup_s + sum(e.train_s + (e.val_s or 0.0) for e in self.epochs) + (self.final_val_s or 0.0)

    def epoch(self, number: int) -> EpochPlan | None:
        """The plan of epoch `number` (1-based), if this prediction covers it."""
        for e in self.epochs:
            if e.epoch == number:
                return e
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape.to_dict(),
            "setup_s": self.setup_s,
            "epochs": [e.to_dict() for e in self.epochs],
            "final_val_s": self.final_val_s,
            "notes": list(self.notes),
            "total_s": self.total_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunPrediction:
        return cls(
            shape=RunShape.from_dict(d["shape"]),
            setup_s=d["setup_s"],
            epochs=tuple(EpochPlan.from_dict(e) for e in d["epochs"]),
            final_val_s=d.get("final_val_s"),
            notes=tuple(d.get("notes", ())),
        )


def predict_run(
    shape: RunShape,
    mosaic: PhaseRate | None,
    no_mosaic: PhaseRate | None,
    val: ValRate | None,
    cache_build_s: float = 0.0,
) -> RunPrediction:
    """Predict each epoch from shape.start_epoch on. A missing phase borrows the other's rate, with a note."""
    if mosaic is None and no_mosaic is None:
        raise ValueError("nothing measured: a prediction needs a mosaic or a no-mosaic rate")
    notes: list[str] = []
    epochs_left = range(shape.start_epoch, shape.epochs)
    if mosaic is None and any(shape.mosaic(e) for e in epochs_left):
        notes.append("no mosaic measurement: mosaic epochs predicted at the no-mosaic rate")
    if no_mosaic is None and any(not shape.mosaic(e) for e in epochs_left):
        notes.append("no no-mosaic measurement: the last close_mosaic epochs predicted at the mosaic rate")
    if val is None:
        notes.append("no validation batch measured: validation not predicted")
    nw = warmup_iterations(shape)
    nb = shape.iterations
    plans: list[EpochPlan] = []
    for epoch, steps in zip(epochs_left, optimizer_steps(shape), strict=True):
        on = shape.mosaic(epoch)
        rate = (mosaic or no_mosaic) if on else (no_mosaic or mosaic)
        assert rate is not None  # one of them is set (checked above)
        restart = epoch == shape.start_epoch or epoch == shape.close_epoch
        one_time = rate.startup_s if restart else 0.0
        if epoch == shape.start_epoch:  # a new process compiles again (a resumed session too)
            one_time += rate.compile_s
        # the non-step time scales with images (a short last batch costs less); every step costs the same
        train_s = shape.n_train / rate.batch * rate.iter_s + steps * rate.step_s + one_time
        phase = "mosaic" if on else "no mosaic"
        if nw and epoch * nb < nw:  # its first iteration is still ramping
            phase = f"warm-up, {phase}"
        validates = shape.validates(epoch)
        first_val = validates and not any(p.val_s is not None for p in plans)
        plans.append(
            EpochPlan(
                epoch=epoch + 1,
                phase=phase,
                mosaic=on,
                iterations=nb,
                steps=steps,
                one_time_s=one_time,
                train_s=train_s,
                val_s=val_seconds(shape.n_val, val, first_val) if validates else None,
            )
        )
    return RunPrediction(
        shape=shape,
        setup_s=cache_build_s,
        epochs=tuple(plans),
        final_val_s=val_seconds(shape.n_val, val),
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class Rates:
    """Everything measured that a run's prediction draws on; kept with the run, so a resumed session predicts alike."""

    mosaic: PhaseRate | None
    no_mosaic: PhaseRate | None
    val: ValRate | None
    cache_build_s: float = 0.0  # the whole dataset's image cache (train and val), built before the first epoch

    def predict(self, shape: RunShape) -> RunPrediction | None:
        if self.mosaic is None and self.no_mosaic is None:
            return None
        return predict_run(shape, self.mosaic, self.no_mosaic, self.val, self.cache_build_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mosaic": self.mosaic.to_dict() if self.mosaic else None,
            "no_mosaic": self.no_mosaic.to_dict() if self.no_mosaic else None,
            "val": self.val.to_dict() if self.val else None,
            "cache_build_s": self.cache_build_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rates:
        return cls(
            mosaic=PhaseRate.from_dict(d["mosaic"]) if d.get("mosaic") else None,
            no_mosaic=PhaseRate.from_dict(d["no_mosaic"]) if d.get("no_mosaic") else None,
            val=ValRate.from_dict(d["val"]) if d.get("val") else None,
            cache_build_s=d.get("cache_build_s", 0.0),
        )

    @classmethod
    def from_results(
        cls, mosaic: ProbeResult | None, no_mosaic: ProbeResult | None, validation: ProbeResult | None = None
    ) -> Rates:
        """The rates of the phase probes that measured something (a failed probe counts as not measured); the
        validation rate from `validation` where given (a probe at the run's own validation batch)."""
        ok = [r for r in (mosaic, no_mosaic) if r is not None and r.stats is not None]
        if validation is not None:
            val = ValRate.from_result(validation)
        else:
            val = next((v for v in (ValRate.from_result(r) for r in ok) if v is not None), None)
        cache = next((r.cache for r in ok if r.cache is not None and r.cache.mode != "none"), None)
        return cls(
            mosaic=PhaseRate.from_result(mosaic) if mosaic is not None and mosaic.stats is not None else None,
            no_mosaic=PhaseRate.from_result(no_mosaic)
            if no_mosaic is not None and no_mosaic.stats is not None
            else None,
            val=val,
            cache_build_s=cache.full_s if cache is not None else 0.0,
        )
