"""torch.compile's account from a study's trials: what compiling cost once, what it saved per epoch, from how many
planned epochs it pays off. Pure: trial records in, CompileSummary out (the search view and the report render it)."""

from __future__ import annotations

from collections.abc import Sequence

from autotune.records.config import TrainConfig
from autotune.records.search import TrialRecord
from autotune.report.data import CompileSummary

OTHER_KEYS = ("batch", "workers", "imgsz", "cache", "source")  # what must match for a like-for-like pair


def _mode(r: TrialRecord) -> str:
    return str(r.config.get("compile", "off"))  # a config dict leaves compile out where it is off


def _train_epoch_s(r: TrialRecord, n_train: int) -> float:
    assert r.images_per_s
    return n_train / r.images_per_s


def _label(r: TrialRecord) -> str:
    """The configuration's settings besides compile (the summary names the mode itself)."""
    return TrainConfig.from_dict({**r.config, "compile": "off"}).label()


def compile_summaries(records: Sequence[TrialRecord], n_train: int, epochs: int) -> tuple[CompileSummary, ...]:
    """One summary per compile mode measured: its fastest trial against the same settings uncompiled where the
    study has them (paired), else against the fastest uncompiled trial at the same image size (best of each)."""
    done = [r for r in records if r.feasible and r.images_per_s and r.state == "COMPLETE"]
    off = [r for r in done if _mode(r) == "off"]
    out = []
    for mode in sorted({_mode(r) for r in done} - {"off"}):
        on = sorted((r for r in done if _mode(r) == mode), key=lambda r: _train_epoch_s(r, n_train))
        pick = None
        for r in on:  # the fastest compiled trial that has an uncompiled twin
            twins = [o for o in off if all(o.config.get(k) == r.config.get(k) for k in OTHER_KEYS)]
            if twins:
                pick = (r, min(twins, key=lambda o: _train_epoch_s(o, n_train)), True)
                break
        if pick is None:
            same = [o for o in off if o.config.get("imgsz") == on[0].config.get("imgsz")]
            if not same:
                continue
            pick = (on[0], min(same, key=lambda o: _train_epoch_s(o, n_train)), False)
        r, o, paired = pick
        out.append(
            CompileSummary(
                mode=mode,
                config=_label(r),
                compile_s=r.compile_s or 0.0,
                epoch_on_s=_train_epoch_s(r, n_train),
                epoch_off_s=_train_epoch_s(o, n_train),
                planned_epochs=epochs,
                paired=paired,
                on_trial=r.number,
                off_trial=o.number,
            )
        )
    return tuple(out)


def compile_words(c: CompileSummary) -> str:
    """One sentence: the one-time cost, the per-epoch gain and the break-even against the planned run."""
    how = "the same settings uncompiled" if c.paired else f"the fastest uncompiled trial ({c.off_trial})"
    head = (
        f"compile={c.mode} ({c.config}, trial {c.on_trial}): compiles in {c.compile_s:.0f} s once per run; "
        f"{c.epoch_on_s:.1f} s of training per epoch vs {c.epoch_off_s:.1f} s for {how}: {c.gain:.2f}x per epoch"
    )
    be = c.break_even_epochs
    if be is None:
        return f"{head}; it saves nothing per epoch, so it never pays off (Ultralytics' PR claims 30% faster)"
    verdict = "pays off" if c.pays_off else "does not pay off"
    return f"{head}; it pays off after {be:.0f} epochs: for the planned {c.planned_epochs} it {verdict}"
