"""The measured settings handed over to a training run: where they come from, what Ultralytics gets, and checks.

A run starts from a study's winner (`--best`, `--study NAME`) or a profile file (`--profile`). It trains exactly
the measured batch, workers, imgsz, cache, device, AMP and nbs; Ultralytics arguments passed through that would
change them are refused (the prediction would be of another configuration), others that change what an
iteration costs are passed on with a warning that is kept with the run. The optimizer 'auto' picked for the
study's planned epochs stays pinned unless --optimizer says otherwise, so the step cost measured is the one paid.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.measure.optimizer import auto_optimizer, optimizer_args
from autotune.records.config import MAX_BATCH, MAX_EPOCHS, OPTIMIZERS, ProbeOptions, TrainConfig, Workload, whole
from autotune.records.machine import Machine
from autotune.records.probe import ProbeResult
from autotune.search import profiles, sidebyside, store
from autotune.search.store import StudyStore

PHASES = ("mosaic", "no_mosaic")  # kept in the study by the store, per phase key
VALIDATION = "validation"  # a probe of the run's own validation batch (--val-batch), per phase key and batch

# Ultralytics arguments that would change what was measured, and what to do instead
REFUSED = {
    "batch": "it was measured",
    "imgsz": "it was measured",
    "workers": "it was measured",
    "cache": "it was measured",
    "device": "it was measured",
    "amp": "it was measured",
    "nbs": "it was measured (it sets the optimizer's step period)",
    "data": "the study's dataset is the one measured",
    "model": "the study's model is the one measured",
    "epochs": "use --epochs",
    "patience": "use --patience",
    "optimizer": "use --optimizer",
    "cos_lr": "use --cos-lr",
    "close_mosaic": "use --close-mosaic",
    "resume": "use --resume",
    "time": "use --epochs (time mode re-plans epochs as it goes)",
    "mode": "autotune train trains",
    "task": "autotune measures detection",
    "cfg": "the settings come from the study or --profile",
}
# passed on, but they change what an iteration costs and no probe measured them: warned and kept with the run
UNMEASURED = frozenset(
    {"rect", "multi_scale", "fraction", "mosaic", "mixup", "cutmix", "copy_paste", "compile", "freeze",
     "deterministic", "augmentations", "channels_last", "quantize"}
)  # fmt: skip
DRIFT_NOTE = 0.15  # baseline drift during the search worth a note: beyond the usual probe-to-probe noise


@dataclass(frozen=True)
class Source:
    """The measured settings and everything known about how they were measured."""

    label: str  # "study NAME, trial N" or "profile PATH"
    config: TrainConfig  # as measured (optimizer 'auto' resolved for workload.epochs)
    workload: Workload  # epochs: the planned run the measurement was made for
    measured: ProbeResult | None  # the winner's probe, or None (profile without its study)
    machine: Machine | None  # where it was measured
    store: StudyStore | None = None  # the study: phase measurements and training runs are kept there
    trial: int | None = None
    profile: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    """The run's own choices (convergence, not speed); None keeps the default."""

    epochs: int | None = None  # default: the study's planned epochs
    patience: int | None = None
    optimizer: str | None = None  # default: the measured optimizer, pinned
    cos_lr: bool | None = None
    close_mosaic: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # further Ultralytics key=value pairs
    val_every: int = 1  # validate after every k-th epoch and the last (autotune's own: Ultralytics has none)
    val_batch: int | None = None  # validation batch; None: Ultralytics' 2x the training batch


@dataclass(frozen=True)
class Handover:
    """What trains, what Ultralytics gets, and which probe request measures each of its phases."""

    source: Source
    config: TrainConfig  # as trained
    workload: Workload  # epochs: this run's
    args: dict[str, Any]  # Ultralytics training arguments
    optimizer: str  # the concrete optimizer Ultralytics builds
    probe_config: TrainConfig  # with probe_epochs: the probe request whose measurement this run's phases need
    probe_epochs: int
    phase_key: str  # names this run's phase measurements in the study
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # kept with the run
    val_every: int = 1
    val_batch: int | None = None  # None: Ultralytics' 2x the training batch

    @property
    def val_probe_needed(self) -> bool:
        """The run validates at a batch no probe of its config measured (probes validate at 2x the batch)."""
        return self.val_batch is not None and self.val_batch != 2 * self.config.batch


def parse_extra(items: list[str]) -> dict[str, Any]:
    """Ultralytics key=value pairs from the command line; unknown keys and measured settings are refused."""
    from autotune.measure.ultralytics_glue import import_quietly

    import_quietly()
    from ultralytics.cfg import smart_value
    from ultralytics.utils import DEFAULT_CFG_KEYS

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if item.startswith("-"):
            raise UserError(f"no such option: {item} (Ultralytics settings pass as key=value, e.g. lr0=0.005)")
        if not sep or not key:
            raise UserError(f"cannot read {item!r}: pass Ultralytics settings as key=value (e.g. lr0=0.005)")
        if key in REFUSED:
            raise UserError(f"{key}= cannot be changed by autotune train: {REFUSED[key]}")
        if key not in DEFAULT_CFG_KEYS:
            near = difflib.get_close_matches(key, list(DEFAULT_CFG_KEYS), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise UserError(f"{key}= is not an Ultralytics setting{hint}")
        out[key] = smart_value(value.strip())
    return out


def check_ultralytics_values(args: dict[str, Any]) -> None:
    """Ultralytics' own type and range checks, as one line."""
    from autotune.measure.ultralytics_glue import import_quietly

    import_quietly()
    from ultralytics.cfg import check_cfg

    try:
        check_cfg(dict(args))
    except (TypeError, ValueError) as e:
        raise UserError(str(e).strip().splitlines()[0]) from None


def normalise_optimizer(name: str) -> str:
    """Ultralytics' spelling of an optimizer name (it matches case-insensitively), or UserError."""
    known = {o.lower(): o for o in OPTIMIZERS}
    if name.lower() not in known:
        raise UserError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")
    return known[name.lower()]


def measured_optimizer(source: Source, n_train: int, nc: int) -> str:
    """The optimizer class the measurement ran with (the probe checked it against what it asked)."""
    if source.measured is not None and source.measured.effective.get("optimizer"):
        return str(source.measured.effective["optimizer"])
    if source.config.optimizer != "auto":
        return source.config.optimizer
    return auto_optimizer(n_train, source.config.batch, source.config.nbs, source.workload.epochs, nc).name


def phase_key(config: TrainConfig, epochs: int, workload: Workload, machine_id: str) -> str:
    """Names one probe request on one machine: the same request on the same machine measures the same thing."""
    blob = json.dumps(
        {"config": config.to_dict(), "epochs": epochs, "model": workload.model, "data": workload.data, "m": machine_id},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def make_handover(source: Source, recipe: Recipe, n_train: int, nc: int, machine: Machine) -> Handover:
    """Resolve the run's settings and Ultralytics arguments; every bad value is a UserError here."""
    if recipe.epochs is not None:
        whole("epochs", recipe.epochs, 1, MAX_EPOCHS)
    if recipe.patience is not None and recipe.patience < 0:
        raise UserError(f"patience must be >= 0, got {recipe.patience}")
    if recipe.close_mosaic is not None and recipe.close_mosaic < 0:
        raise UserError(f"close-mosaic must be >= 0, got {recipe.close_mosaic}")
    whole("val-every", recipe.val_every, 1, MAX_EPOCHS, " epochs")
    if recipe.val_batch is not None:
        whole("val-batch", recipe.val_batch, 1, MAX_BATCH)
    if recipe.val_every > 1 and recipe.extra.get("val") is False:
        raise UserError("--val-every needs validation on: val=False already validates the last epoch only")
    epochs = recipe.epochs or source.workload.epochs
    measured = measured_optimizer(source, n_train, nc)
    notes: list[str] = list(source.notes)
    warnings: list[str] = []
    if recipe.optimizer is None:
        # the measured optimizer stays pinned, with what 'auto' set for it: the step cost measured is the one paid
        config = source.config
        opt_args, _ = optimizer_args(config, n_train, nc, source.workload.epochs)
        concrete = measured
        if config.optimizer == "auto":
            would = auto_optimizer(n_train, config.batch, config.nbs, epochs, nc)
            if would.name != measured:
                notes.append(
                    f"optimizer {measured} as measured (for {source.workload.epochs} planned epochs); Ultralytics' "
                    f"'auto' would pick {would.name} for {epochs} epochs ({would.reason}): pass --optimizer auto "
                    f"for that (its step cost is then measured first)"
                )
    else:
        config = source.config.with_(optimizer=normalise_optimizer(recipe.optimizer))
        opt_args, _ = optimizer_args(config, n_train, nc, epochs)
        concrete = opt_args["optimizer"]
    if concrete == measured:  # the study's own request measures this run (an lr or momentum costs nothing)
        probe_config, probe_epochs = source.config, source.workload.epochs
    else:
        probe_config, probe_epochs = config.with_(optimizer=concrete), epochs
        notes.append(f"optimizer {concrete} differs from the measured {measured}: its step cost is measured first")
    workload = replace(source.workload, epochs=epochs)
    args: dict[str, Any] = {
        **profiles.train_args(config, workload),
        **opt_args,
        "plots": False,  # plotting fetches a font: nothing downloads at run time (plots=True to have them)
    }
    for key in ("task", "mode"):  # the profile's cfg names them; model.train() sets both itself
        args.pop(key)
    if config.source == "resized":  # measured from a copy pre-resized to imgsz: train from that copy
        from autotune.data.resize import plan_resize

        args["data"] = str(Path(plan_resize(source.workload.data, config.imgsz).out) / "data.yaml")
        notes.append(f"trains from the copy pre-resized to {config.imgsz} px: {args['data']} (made first if missing)")
    for key, value in (("patience", recipe.patience), ("cos_lr", recipe.cos_lr), ("close_mosaic", recipe.close_mosaic)):
        if value is not None:
            args[key] = value
    if "compile" in recipe.extra and config.compile != "off":
        raise UserError(
            f"compile= cannot be changed by autotune train: the winner was measured with compile={config.compile} "
            "(search with --compile to measure another mode)"
        )
    for key in sorted(set(recipe.extra) & UNMEASURED):
        warnings.append(f"{key}={recipe.extra[key]} changes what an iteration costs and was not measured")
    args.update(recipe.extra)
    check_ultralytics_values(args)
    if source.machine is not None and source.machine.identity_hash() != machine.identity_hash():
        warnings.append(
            f"measured on other hardware: {source.machine.summary()}; this machine: {machine.summary()} "
            "(its phases are measured here before training)"
        )
    return Handover(
        source=source,
        config=config,
        workload=workload,
        args=args,
        optimizer=concrete,
        probe_config=probe_config,
        probe_epochs=probe_epochs,
        phase_key=phase_key(probe_config, probe_epochs, source.workload, machine.identity_hash()),
        notes=tuple(notes),
        warnings=tuple(warnings),
        val_every=recipe.val_every,
        val_batch=recipe.val_batch,
    )


# -- sources ----------------------------------------------------------------------------------------------------


def from_study(st: StudyStore) -> Source:
    """The winner of a study: its measured config, workload and probe result."""
    meta = st.meta()
    number, _ = st.winner_number()
    if number is None:
        raise UserError(
            f"study {st.name!r} has no feasible trial to train with: run `autotune search` (longer, or with "
            "another space) first"
        )
    snap = st.snapshot("")
    trial = snap.trial(number)
    result = snap.results.get(number)
    config_d = (trial.config if trial else None) or (result.requested if result else None)
    if not config_d:
        raise UserError(f"study {st.name!r}: trial {number} holds no configuration")
    config = TrainConfig.from_dict(config_d)
    measured = result if result is not None and result.ok else None
    notes = drift_notes(snap.baseline, snap.baseline_end)
    fresh = sidebyside.fresh_runs(snap.side_by_side, meta.baseline, config)
    chosen = sidebyside.representative(fresh[1]) if fresh else None
    if chosen is not None and chosen.stats is not None:
        # the selection run is the luckiest of many noisy probes: predict from the winner's fresh runs instead
        if measured is not None and measured.stats is not None:
            notes += (
                f"predicted from the winner's side-by-side runs ({chosen.stats.images_per_s:.1f} images/s), not "
                f"the run that selected it ({measured.stats.images_per_s:.1f})",
            )
        measured = chosen
    return Source(
        label=f"study {st.name}, trial {number}",
        config=config,
        workload=meta.workload,
        measured=measured,
        machine=meta.machine,
        store=st,
        trial=number,
        notes=notes,
    )


def drift_notes(start: ProbeResult | None, end: ProbeResult | None) -> tuple[str, ...]:
    drift = baseline_drift(start, end)
    if drift is None or abs(drift) <= DRIFT_NOTE:
        return ()
    return (
        f"the search measured its baseline {drift:+.0%} images/s at its end than at its start: timings on this "
        "machine moved that much while it searched, and a prediction can be off as much",
    )


def baseline_drift(start: ProbeResult | None, end: ProbeResult | None) -> float | None:
    """The baseline's images/s at the end of the search over at its start, minus 1 (None unless both measured)."""
    if start is None or end is None or start.stats is None or end.stats is None:
        return None
    return end.stats.images_per_s / start.stats.images_per_s - 1


def from_profile(path: Path, storage: Any | None) -> Source:
    """A profile file; its study (named in the sidecar) supplies the measurement where the storage has it."""
    saved = profiles.read(path)
    cfg, meta = saved.cfg, saved.meta
    if not isinstance(cfg, dict) or "data" not in cfg or "model" not in cfg:
        raise UserError(f"{path}: not an autotune profile (no data or model)")
    try:
        config = TrainConfig.from_dict(meta["config"]) if "config" in meta else _config_from_cfg(cfg)
        workload = Workload(data=str(cfg["data"]), model=str(cfg["model"]), epochs=int(cfg.get("epochs", 100)))
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise UserError(f"{path}: cannot read its settings ({e})") from None
    machine = Machine.from_dict(meta["machine"]) if isinstance(meta.get("machine"), dict) else None
    notes: list[str] = []
    st = None
    if storage is not None and meta.get("study"):
        try:
            st = store.load(storage, str(meta["study"]))
        except UserError:
            notes.append(f"study {meta['study']!r} is not in the storage: phases are measured here, not stored")
    elif not meta.get("study"):
        notes.append("the profile names no study: its phases are measured here, not stored")
    measured = None
    trial = meta.get("trial")
    if st is not None:
        notes += drift_notes(st.reference(), st.reference(end=True))
        if isinstance(trial, int):
            r = st.snapshot("").results.get(trial)
            measured = r if r is not None and r.ok else None
    return Source(
        label=f"profile {path}",
        config=config,
        workload=workload,
        measured=measured,
        machine=machine,
        store=st,
        trial=trial if isinstance(trial, int) else None,
        profile=str(path),
        notes=tuple(notes),
    )


def _config_from_cfg(cfg: dict[str, Any]) -> TrainConfig:
    cache = cfg.get("cache", False)
    return TrainConfig(
        batch=int(cfg["batch"]),
        workers=int(cfg["workers"]),
        imgsz=int(cfg["imgsz"]),
        cache="none" if cache in (False, None, "none") else str(cache),
        device=str(cfg.get("device", "cpu")),
        amp="bf16" if cfg.get("amp") == "bf16" else bool(cfg.get("amp", True)),
        optimizer=str(cfg.get("optimizer", "auto")),
        nbs=int(cfg.get("nbs", 64)),
        compile=_compile_mode(cfg.get("compile", False)),
    )


def _compile_mode(value: Any) -> str:
    """Ultralytics' compile argument (False, True or a mode) as TrainConfig.compile."""
    if value in (False, None, "False", "false", "off"):
        return "off"
    return "default" if value in (True, "True", "true") else str(value)


# -- phase measurements ---------------------------------------------------------------------------------------


def stored_phase(source: Source, h: Handover, kind: str, machine: Machine) -> ProbeResult | None:
    """A phase measurement this run can use: the winner's own probe (mosaic) or one an earlier run stored."""
    same_machine = source.machine is not None and source.machine.identity_hash() == machine.identity_hash()
    if (
        kind == "mosaic"
        and source.measured is not None
        and same_machine
        and h.probe_config == source.config
        and h.probe_epochs == source.workload.epochs
    ):
        return source.measured
    if source.store is None:
        return None
    return source.store.phase(kind, h.phase_key)


def phase_probe_options(source: Source, kind: str, cpu: bool) -> ProbeOptions:
    """Measure a phase as the study measured its trials (window, warm-up bounds, page cache), mosaic as the phase."""
    if source.measured is not None and source.measured.options:
        base = ProbeOptions.from_dict(source.measured.options)
    else:
        base = ProbeOptions(iters=10 if cpu else 20, warmup_max=15 if cpu else 30)
    return replace(
        base,
        mosaic=kind == "mosaic",
        timeout_s=None,
        keep_scratch=False,
        utilisation=False,
        compute_only_iters=0,
        py_spy=False,
    )


def needed_phases(h: Handover) -> list[str]:
    """Which phases the run has: mosaic epochs unless close_mosaic covers them all, no-mosaic ones if any."""
    close = int(h.args.get("close_mosaic", 10))  # Ultralytics' default
    epochs = h.workload.epochs
    return [kind for kind, has in (("mosaic", close == 0 or epochs > close), ("no_mosaic", close > 0)) if has]


def gather_phases(
    h: Handover,
    source: Source,
    machine: Machine,
    measure: bool,
    probe_fn: Callable[[TrainConfig, Workload, ProbeOptions, str], ProbeResult],
    on_note: Callable[[str], None],
) -> dict[str, ProbeResult]:
    """The run's phase measurements: stored ones (any phase: one can stand in for another), else one probe for each
    phase the run has (kept in the study for later runs); and its validation batch where no phase probe ran it."""
    phases: dict[str, ProbeResult] = {}
    needed = needed_phases(h)
    cpu = h.config.device == "cpu"
    for kind in PHASES:
        stored = stored_phase(source, h, kind, machine)
        if stored is not None:
            phases[kind] = stored
        elif kind in needed:
            options = phase_probe_options(source, kind, cpu)
            what = f"measuring the {kind.replace('_', '-')} phase ({h.probe_config.label()})"
            found = _measure_phase(h, source, kind, h.phase_key, options, what, measure, probe_fn, on_note)
            if found is not None:
                phases[kind] = found
    if h.val_probe_needed:
        key = f"{h.phase_key}:val{h.val_batch}"
        stored = source.store.phase(VALIDATION, key) if source.store is not None else None
        options = replace(phase_probe_options(source, "mosaic", cpu), val_batch=h.val_batch)
        what = f"measuring validation at batch {h.val_batch} ({h.probe_config.label()})"
        found = stored or _measure_phase(h, source, VALIDATION, key, options, what, measure, probe_fn, on_note)
        if found is not None:
            phases[VALIDATION] = found
    return phases


def _measure_phase(
    h: Handover,
    source: Source,
    kind: str,
    key: str,
    options: ProbeOptions,
    what: str,
    measure: bool,
    probe_fn: Callable[[TrainConfig, Workload, ProbeOptions, str], ProbeResult],
    on_note: Callable[[str], None],
) -> ProbeResult | None:
    """One phase probe, kept in the study under (kind, key); None (with a note) where it measured nothing."""
    name = kind.replace("_", "-")
    if not measure:
        on_note(f"note: no {name} measurement, and --no-measure: not probed")
        return None
    result = probe_fn(h.probe_config, replace(source.workload, epochs=h.probe_epochs), options, what)
    if not result.ok or result.stats is None:
        on_note(f"warning: the {name} probe ended {result.status}: {result.reason}; not predicted from it")
        return None
    kept = source.store is not None
    if source.store is not None:
        source.store.set_phase(kind, key, result)
    on_note(
        f"{what}: {result.stats.images_per_s:.1f} images/s, probe took {result.duration_s:.0f} s"
        + ("; kept in the study" if kept else "")
    )
    return result
