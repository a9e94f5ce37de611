"""The story's claims (DESIGN.md "Factors") answered with a study's own numbers: each lever's naive rule, where
the story reasons wrongly, what the interaction means, and the recipe levers probes do not measure."""

from __future__ import annotations

from autotune.measure.profile import STALL_THRESHOLD
from autotune.records.config import TrainConfig
from autotune.records.machine import Machine
from autotune.records.search import DatasetSize
from autotune.report import factors
from autotune.report.data import Side, StoryCheck
from autotune.report.factors import STORY, STORY_PRODUCT_CLAIM, STORY_REALITY
from autotune.search.levers import AMP_LEVER, BF16_LEVER, OPTIMIZER_LEVER

GiB = 2**30
STORY_COMPILE = 1.3  # Ultralytics' claim for compile=True (its PR's title), the naive factor it is set against
STORY_AMP = 3.0  # NVIDIA's "up to 3x" for automatic mixed precision training on Tensor Core GPUs


def claim(lever: str, before: str, after: str) -> tuple[str, float | None, str]:
    """(the story's claim as it states it, its rule applied to this change, a note where it has no rule)."""
    if lever == "imgsz":
        naive = factors.naive_imgsz(int(before), int(after))
        return f"640 -> 416 px: (640/416)^2 = {STORY['imgsz']}x; here ({before}/{after})^2", naive, ""
    if lever == "batch":
        return (
            f"batch 8-16 -> 32-48: {STORY['batch']:g}x; here {after}/{before}",
            factors.naive_batch(int(before), int(after)),
            "",
        )
    if lever == "cache":
        claim = 'disk -> RAM cache: "2x" (RAM ~500K images/s vs disk ~50K images/s)'
        if after == "ram":
            return claim, STORY["cache"], ""
        return claim, None, f"the story has no rule for {before} -> {after}"
    if lever == "workers":
        claim = 'workers 8 -> 12-16: "+50-100%", 1.5 in its product'
        if int(after) > int(before):
            return claim, STORY["workers"], ""
        return claim, None, "the story only says more workers help; the winner uses fewer"
    if lever == "source":
        claim = 'option 2, the dataset pre-resized to 416 px, "20-30 min/epoch" against option 1\'s "45-60": about 2x'
        return claim, (2.0 if after == "resized" else None), ""
    if lever == "compile":  # not the story's: Ultralytics' PR that added compile= is titled "30% faster training"
        claim = f'torch.compile: Ultralytics\' PR "30% faster training", {STORY_COMPILE:g}x'
        if after != "off":
            return claim, STORY_COMPILE, "per iteration; its compile time is a one-time cost (see torch.compile)"
        return claim, None, "the winner trains uncompiled"
    if lever == AMP_LEVER:  # not the story's: NVIDIA's claim for automatic mixed precision on Tensor Core GPUs
        return 'mixed precision: NVIDIA "up to 3x" on Tensor Core GPUs', STORY_AMP, "the baseline in FP32 vs AMP"
    if lever == BF16_LEVER:
        return "bfloat16 autocast (Ampere and newer): no loss scaling", None, "no claim to set it against"
    if lever == OPTIMIZER_LEVER:
        return f'SGD -> Adam: "{STORY["optimizer"]}x"; here SGD -> {after}', STORY["optimizer"], ""
    return "", None, ""


def interaction_text(interval: tuple[float, float, float] | None, base: Side, win: Side, on_gpu: bool) -> str:
    """The interaction in words, by the bottleneck before and after; explained only where its interval excludes 1
    (otherwise the measurements cannot tell it from levers that simply multiply)."""
    if interval is None:
        return "not known: some levers are not measured alone (run `autotune report --measure`)"
    inter, lo, hi = interval
    if lo <= 1.0 <= hi:
        return (
            f"The end-to-end speedup over the product of the single factors is {inter:.2f}x [{lo:.2f}-{hi:.2f}]: "
            "its interval holds 1, so these measurements cannot tell an interaction from levers that simply multiply."
        )

    def where(s: Side) -> str:
        if s.stall_fraction is None:
            return "unknown"
        bound = "data-bound" if s.stall_fraction > STALL_THRESHOLD else "compute-bound"
        util = f", GPU busy {s.gpu_util:.0f}%" if on_gpu and s.gpu_util is not None else ""
        return f"{bound} (waits for data {s.stall_fraction:.0%} of the time{util})"

    moved = f"The baseline is {where(base)}; the winner is {where(win)}."
    same = where(base).split(" ")[0] == where(win).split(" ")[0]
    if inter < 0.9:
        why = (
            "they relieve the same bottleneck, so their gains overlap instead of multiplying"
            if same
            else "once the bottleneck moves, further gains on the old one are worth nothing"
        )
        return f"{moved} Together the levers give {inter:.2f}x of what their single factors multiply to: {why}."
    if inter > 1.1:
        return f"{moved} Together the levers give {inter:.2f}x their product: they help each other."
    return f"{moved} The single factors multiply to about the end-to-end speedup ({inter:.2f}x): little overlap."


def story_checks(
    dataset: DatasetSize | None, base: Side, win: Side, n_train: int, machine: Machine | None
) -> list[StoryCheck]:
    """The story's claims answered with this study's numbers (DESIGN.md "Factors")."""
    b, w = TrainConfig.from_dict(base.config), TrainConfig.from_dict(win.config)
    it_b, it_w = factors.iterations_per_epoch(n_train, b.batch), factors.iterations_per_epoch(n_train, w.batch)
    st_b = factors.optimizer_steps_per_epoch(n_train, b.batch, b.nbs)
    st_w = factors.optimizer_steps_per_epoch(n_train, w.batch, w.nbs)
    out = [
        StoryCheck(
            '640 -> 416 px takes "1554 -> ~600 iterations"',
            f"iterations per epoch = images / batch at any image size: {n_train} / {b.batch} = {it_b} at the "
            f"baseline, {n_train} / {w.batch} = {it_w} for the winner; image size changes the time per iteration, "
            "never their count.",
        ),
        StoryCheck(
            'batch 16 -> 32 is "2x"',
            f"a bigger batch means fewer iterations, but each takes longer; with nbs={b.nbs} the optimizer steps "
            f"{st_b} times per epoch at batch {b.batch} and {st_w} times at batch {w.batch}. Only measured "
            "images/s counts (the batch row of the factor table).",
        ),
    ]
    ram = machine.ram_bytes if machine else None
    if ram and dataset and dataset.n_images:
        need = int(dataset.n_images * w.imgsz**2 * dataset.mean_aspect * 3)
        out.append(
            StoryCheck(
                'switch to the RAM cache "if available GB > batch x 2"',
                f"the RAM cache holds the whole dataset resized: {dataset.n_images} images x {w.imgsz}^2 px x 3 bytes "
                f"~ {need / GiB:.2f} GiB here, against {ram / GiB:.0f} GiB of RAM (Ultralytics wants 2x margin); "
                "the batch size has nothing to do with it.",
            )
        )
    cores = machine.usable_cores if machine else None
    if cores:
        out.append(
            StoryCheck(
                'workers 8 -> 12-16 "chosen by RAM size"',
                f"loader workers are bounded by CPU cores ({cores} usable here), not by RAM; Ultralytics caps them "
                "at the core count. The workers row measures what they bring.",
            )
        )
    out.append(
        StoryCheck(
            f'the factors multiply to "{STORY_PRODUCT_CLAIM}x" (reality "{STORY_REALITY[0]:g}-{STORY_REALITY[1]:g}x")',
            "factors multiply only when they act on different bottlenecks; the interaction row measures how far "
            "this study's levers overlap.",
        )
    )
    return out


RECIPE = (
    StoryCheck(
        'optimizer SGD -> Adam "1.15x"',
        "Ultralytics 8.4's optimizer=auto picks MuSGD for long runs and AdamW for short ones; the optimizer changes "
        "how many epochs reach a target accuracy, not seconds per epoch. Probes measure only its step cost (the "
        "optimizer row).",
    ),
    StoryCheck(
        'early-stopping patience 15 -> 10 "-30% epochs"',
        "fewer epochs only if the run plateaus; it saves whole epochs, not seconds per epoch. Not measured by probes.",
    ),
    StoryCheck(
        'rect/quad loaders + cosine LR + close-mosaic "+5%"',
        "cosine LR and close-mosaic change convergence (accuracy per epoch); close-mosaic's last epochs also run "
        "without mosaic, slightly cheaper per image (`autotune train` predicts them apart). rect is for "
        "validation; Ultralytics' training ignores it with shuffle. Not measured by probes.",
    ),
    StoryCheck(
        "epochs",
        "total time = epochs x epoch time + one-time costs: the epoch count is the biggest lever of all, and only "
        "convergence (a validation metric) can tell how many are needed.",
    ),
)
