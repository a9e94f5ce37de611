"""Draw a ReportData: chart data (pure), PNG charts, report.md, a self-contained report.html, report.json."""

from __future__ import annotations

import base64
import html
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.files import atomic_write
from autotune.report import charts
from autotune.report.compiling import compile_words
from autotune.report.data import FactorRow, ReportData
from autotune.report.validation import validation_words
from autotune.units import fmt_s as _fmt_s

GiB = 2**30
FORMATS = ("md", "html", "json")


# -- plot data, apart from drawing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThroughputInfo:
    series: dict[int, tuple[list[int], list[float]]]  # imgsz -> (batches, best images/s at each)
    memory: dict[int, tuple[list[int], list[float]]]  # imgsz -> (batches, peak GiB of the feasible trials)
    failed: dict[int, list[int]]  # imgsz -> batches over the limit or out of memory
    limit_gib: float | None


def throughput_info(d: ReportData) -> ThroughputInfo:
    best: dict[tuple[int, int], float] = {}
    mem: dict[tuple[int, int], float] = {}
    failed: dict[int, set[int]] = {}
    for p in d.points:
        if p.feasible and p.images_per_s:
            k = (p.imgsz, p.batch)
            best[k] = max(best.get(k, 0.0), p.images_per_s)
            if p.peak_memory_bytes:
                mem[k] = max(mem.get(k, 0.0), p.peak_memory_bytes / GiB)
        elif p.status in ("oom", "over_limit"):
            failed.setdefault(p.imgsz, set()).add(p.batch)

    def by_size(values: dict[tuple[int, int], float]) -> dict[int, tuple[list[int], list[float]]]:
        out: dict[int, tuple[list[int], list[float]]] = {}
        for (size, batch), v in sorted(values.items()):
            xs, ys = out.setdefault(size, ([], []))
            xs.append(batch)
            ys.append(v)
        return out

    limit = d.memory_limit_bytes / GiB if d.memory_limit_bytes else None
    return ThroughputInfo(by_size(best), by_size(mem), {k: sorted(v) for k, v in failed.items()}, limit)


# -- charts -----------------------------------------------------------------------------------------------------------


def draw_charts(d: ReportData, folder: Path, feasible: list[Any] | None = None) -> tuple[list[Path], list[str]]:
    """PNG files of every chart the data allows, and notes on those it does not."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    notes: list[str] = []
    if d.waterfall:
        w = d.waterfall
        out.append(
            charts.waterfall(
                [s.label for s in w], [s.start_s for s in w], [s.end_s for s in w], folder / "waterfall.png"
            )
        )
    else:
        notes.append("waterfall: needs every lever measured alone (`autotune report --measure`)")
    if d.factors:
        f = d.factors
        out.append(
            charts.naive_vs_measured(
                [r.lever for r in f],
                [r.naive for r in f],
                [r.measured for r in f],
                [r.low for r in f],
                [r.high for r in f],
                folder / "factors.png",
            )
        )
    ti = throughput_info(d)
    kind = "GPU memory" if d.baseline.config.get("device") != "cpu" else "RAM (PSS)"
    out.append(charts.throughput_vs_batch(ti.series, ti.memory, ti.failed, ti.limit_gib, kind, folder / "batch.png"))
    if d.front:
        labels = [f"b{p.batch} w{p.workers} {p.cache}{' resized' if p.source == 'resized' else ''}" for p in d.front]
        out.append(
            charts.speed_vs_resolution(
                [p.imgsz for p in d.front], [p.images_per_s or 0 for p in d.front], labels, folder / "front.png"
            )
        )
    if feasible is not None:
        paths, why = optuna_charts(feasible, folder)
        out += paths
        notes += why
    return out, notes


def optuna_charts(feasible: list[Any], folder: Path) -> tuple[list[Path], list[str]]:
    """Optuna's history and parameter importances over the feasible trials only (an infeasible trial's 1e9 s
    objective would flatten the history and dominate the importances)."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created in memory" line
    copy = optuna.create_study(direction="minimize")
    copy.add_trials(feasible)
    out, notes = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are flagged experimental
        out.append(
            charts.optuna_figure(ovm.plot_optimization_history(copy, target_name="epoch s"), folder / "history.png")
        )
        varied = {k for t in feasible for k in t.params if len({u.params.get(k) for u in feasible}) > 1}
        if len(feasible) >= 3 and varied:
            try:
                ax = ovm.plot_param_importances(copy, target_name="epoch s")
                out.append(charts.optuna_figure(ax, folder / "importances.png"))
            except (ValueError, RuntimeError) as e:  # Optuna refuses some degenerate trial sets: say why
                notes.append(f"parameter importances: {e}")
        else:
            notes.append("parameter importances: need at least 3 feasible trials that vary a parameter")
    return out, notes


# -- text -------------------------------------------------------------------------------------------------------------


def fmt_s(s: float | None) -> str:
    return _fmt_s(s, missing="-")


def fmt_x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def fmt_interval(v: float | None, interval: tuple[float, float] | None) -> str:
    """'1.23x [1.05-1.44]'; the interval is propagated in log space from the factors'."""
    if v is None:
        return "-"
    return f"{v:.2f}x" + (f" [{interval[0]:.2f}-{interval[1]:.2f}]" if interval else "")


def factor_cells(r: FactorRow) -> list[str]:
    if r.measured is not None:
        measured = f"{r.measured:.2f}x [{r.low:.2f}-{r.high:.2f}], n={r.n}"
        if r.interval != "repeats":
            measured += f" (no repeats: {r.interval})"
        if r.indistinguishable_from_one:
            measured += " (indistinguishable from 1)"
    else:
        measured = r.state
    gap = f"{r.naive / r.measured:.2f}" if r.naive and r.measured else "-"
    return [r.lever, f"{r.before} -> {r.after}", r.claim, fmt_x(r.naive), measured, gap, r.note]


FACTOR_HEAD = ["lever", "change", "the story says", "naive", "measured [interval]", "naive / measured", "note"]


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in esc)]) + "\n"


def headline(d: ReportData) -> str:
    label = "" if d.same_imgsz else f" (imgsz {d.winner.config['imgsz']} vs {d.baseline.config['imgsz']})"
    return (
        f"Winner vs baseline: {d.end_to_end:.2f}x [{d.end_to_end_low:.2f}-{d.end_to_end_high:.2f}]{label}; "
        f"projected epoch {fmt_s(d.baseline.epoch_train_s)} -> {fmt_s(d.winner.epoch_train_s)} (training only)"
    )


def _config(c: dict[str, Any]) -> str:
    text = f"batch {c['batch']}, workers {c['workers']}, imgsz {c['imgsz']}, cache {c['cache']}"
    return text + (", from the pre-resized copy" if c.get("source") == "resized" else "")


def _overview_md(d: ReportData) -> list[str]:
    b, w = d.baseline, d.winner
    limit = f"{d.memory_limit_bytes / GiB:.2f} GiB" if d.memory_limit_bytes else "none"
    parts = [
        f"# autotune report: {d.study}\n",
        f"Machine: {d.machine}. Workload: `{d.workload.get('data')}`, model `{d.workload.get('model')}`, "
        f"{d.workload.get('n_train')} train + {d.workload.get('n_val')} val images. Space: {d.space}; "
        f"memory limit {limit}. Storage: `{d.storage}`. Built {d.created}.\n",
        f"**{headline(d)}**\n",
        f"The headline comes from {d.end_to_end_source}.\n",
        _md_table(
            ["", "config", "images/s (each measurement)", "data stall", "optimizer (step)"],
            [
                [
                    name,
                    _config(s.config),
                    ", ".join(f"{v:.1f}" for v in s.images_per_s),
                    "-" if s.stall_fraction is None else f"{s.stall_fraction:.1%}",
                    f"{s.optimizer} ({s.step_s * 1000:.0f} ms every {s.accumulate} iterations)" if s.step_s else "-",
                ]
                for name, s in (("baseline", b), ("winner", w))
            ],
        ),
    ]
    return parts


def _factors_md(d: ReportData) -> list[str]:
    parts = [
        "## The factor table\n",
        "Each lever measured alone: the baseline with only that lever set to the winner's value "
        "(images/s ratio; the interval spans the repeats' extreme ratios, or, where a side was measured once, the "
        f"noise floor: the larger of the baseline's measured drift and 10%, here +-{d.noise_floor:.0%}). Products "
        "and the interaction carry intervals propagated in log space.\n",
        _md_table(FACTOR_HEAD, [factor_cells(r) for r in d.factors]),
        _md_table(
            ["", "factor"],
            [
                ["product of the story's factors for these changes", fmt_x(d.naive_product)],
                [
                    "product of the measured single factors",
                    fmt_interval(d.measured_product, d.measured_product_interval),
                ],
                [
                    "measured end to end (baseline -> winner)",
                    f"{d.end_to_end:.2f}x [{d.end_to_end_low:.2f}-{d.end_to_end_high:.2f}]",
                ],
                ["interaction (end to end / product of measured)", fmt_interval(d.interaction, d.interaction_interval)],
                ["the story's own product, all five levers", '16.3x (its "reality": 5-8x)'],
            ],
        ),
        f"{d.interaction_text}\n",
    ]
    if d.missing:
        parts.append(f"Not measured yet: {', '.join(d.missing)}. `autotune report --measure` measures them.\n")
    return parts


def _times_md(d: ReportData) -> list[str]:
    b, w = d.baseline, d.winner
    parts = [
        "## Epoch and total time\n",
        _md_table(
            [
                "",
                "train / epoch",
                "val / epoch",
                "one-time cache build",
                "one-time resize",
                "one-time compile",
                f"total, {d.epochs} epochs",
            ],
            [
                [
                    name,
                    fmt_s(s.epoch_train_s),
                    fmt_s(s.epoch_val_s),
                    fmt_s(s.cache_build_s),
                    fmt_s(s.resize_s),
                    fmt_s(s.compile_s),
                    fmt_s(total),
                ]
                for name, s, total in (("baseline", b, d.total_baseline_s), ("winner", w, d.total_winner_s))
            ],
        ),
    ]
    if d.compile:
        parts += ["### torch.compile\n", *(f"- {compile_words(c)}" for c in d.compile), ""]
    if d.validation is not None:
        v = d.validation
        parts += [
            "### Validation\n",
            _md_table(
                ["validate", f"passes in {v.epochs} epochs (+ best.pt)", "validation time", "saved"],
                [
                    [
                        "every epoch" if o.every == 1 else f"every {o.every} epochs",
                        str(o.passes),
                        fmt_s(o.val_s),
                        fmt_s(o.saved_s) if o.every > 1 else "-",
                    ]
                    for o in v.options
                ],
            ),
            *(f"- {w}" for w in validation_words(v)),
            "",
        ]
    return parts


def markdown(d: ReportData, images: Sequence[Path], notes: Sequence[str]) -> str:
    """report.md: the headline and the two configurations, the factor table, epoch and total time, the story's
    claims answered, then the charts as image links (relative to the report's folder)."""
    parts = [*_overview_md(d), *_factors_md(d), *_times_md(d)]
    if d.train_runs:
        parts += ["### Predicted vs actual (`autotune train`)\n", _train_runs_md(d.train_runs)]
    else:
        parts.append("No `autotune train --best` run recorded yet: once one runs, its epochs appear here.\n")
    parts += [
        "## Where the story reasons wrongly, with this study's numbers\n",
        *(f"- **{c.claim}**: {c.verdict}" for c in d.story),
        "",
        "## Recipe levers probes do not measure\n",
        *(f"- **{c.claim}**: {c.verdict}" for c in d.recipe),
        "",
        "## Charts\n",
        *(f"![{p.stem}]({p.name})\n" for p in images),
    ]
    if notes or d.notes:
        parts += ["## Notes\n", *(f"- {n}" for n in (*d.notes, *notes)), ""]
    return "\n".join(parts)


def _train_runs_md(runs: Sequence[dict[str, Any]]) -> str:
    rows, totals = [], []
    for run in runs:
        for e in run.get("epochs", []):
            err = f"{e['train_error']:+.1%}" if e.get("train_error") is not None else "-"
            rows.append([run["id"], str(e["epoch"]), e.get("phase") or "-", fmt_s(e.get("predicted_train_s")),
                         fmt_s(e["train_s"]), err, fmt_s(e.get("predicted_val_s")), fmt_s(e.get("val_s")),
                         f"{e['images_per_s']:.1f}"])  # fmt: skip
        if run.get("predicted_s"):
            m = run.get("final_metrics") or {}
            maps = ", ".join(f"{k} {v:.3f}" for k, v in m.items() if "mAP" in k)
            totals.append(
                f"- run {run['id']} ({run['status']}): predicted {fmt_s(run['predicted_s'])}, the predicted parts took "
                f"{fmt_s(run['predicted_parts_s'])} ({run['predicted_parts_s'] / run['predicted_s'] - 1:+.1%}); "
                f"{fmt_s(run['actual_s'])} in all" + (f"; {maps}" if maps else "")
            )
    head = ["run", "epoch", "phase", "predicted train", "actual train", "error", "predicted val", "actual val",
            "images/s"]  # fmt: skip
    return _md_table(head, rows) + "\n" + "\n".join(totals) + "\n"


def to_html(md_text: str, folder: Path) -> str:
    """A self-contained page: the Markdown's tables, lists and headings as HTML, images embedded as data URIs."""
    body: list[str] = []
    lines = md_text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            body.append(_html_table(rows))
            continue
        if m := re.match(r"^(#+) (.*)", line):
            n = len(m.group(1))
            body.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif m := re.match(r"^!\[(.*)\]\((.*)\)", line):
            data = base64.b64encode((folder / m.group(2)).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}"></figure>')
        elif line.startswith("- "):
            body.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
        i += 1
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;"
        "vertical-align:top}th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>autotune report</title><style>{style}</style>"
        f"</head><body>{''.join(body)}</body></html>"
    )


def _inline(text: str) -> str:
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def _html_table(rows: list[str]) -> str:
    def cells(r: str) -> list[str]:
        return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", r.strip())[1:-1]]

    head, body = cells(rows[0]), [cells(r) for r in rows[2:]]
    h = "".join(f"<th>{_inline(c)}</th>" for c in head)
    b = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><tr>{h}</tr>{b}</table>"


def write(d: ReportData, folder: Path, formats: Sequence[str], feasible: list[Any] | None = None) -> list[Path]:
    """Charts and the asked formats into `folder` (each file written whole or not at all); returns every file
    written. `feasible`: Optuna's feasible trials, for its history and importance charts."""
    images, notes = draw_charts(d, folder, feasible)
    written = list(images)
    md_text = markdown(d, images, notes)
    if "md" in formats:
        written.append(atomic_write(folder / "report.md", md_text))
    if "html" in formats:
        written.append(atomic_write(folder / "report.html", to_html(md_text, folder)))
    if "json" in formats:
        written.append(
            atomic_write(folder / "report.json", json.dumps({**d.to_dict(), "chart_notes": notes}, indent=1))
        )
    return written
