"""Everything autotune does to Ultralytics, and what it reads back: shared by probe, loader-only and training runs.

Ultralytics changes what was asked, silently (DESIGN.md, "Measuring"), and does things autotune must not (download
weights for its AMP check, log to stdout, zero the workers on a CPU, halve the batch after an OOM). Each of those
is handled here once: the patches, the fixes applied from callbacks, the reading of the settings a trainer really
uses, and the comparison with what was asked.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.records.config import DEFAULT_MODEL, TrainConfig


def import_quietly() -> None:
    """Import Ultralytics in autotune's own process: its log goes to stderr, never to stdout (which carries
    `--json`), and its first-run settings banner ("Creating new Ultralytics Settings ...") to nowhere."""
    if "ultralytics" in sys.modules:
        return
    with contextlib.redirect_stdout(io.StringIO()):  # the banner is logged while the module is imported
        import ultralytics.utils  # noqa: F401  (binds Ultralytics' LOGGER handler to the stream above)
    # sys.__stderr__, not sys.stderr: a test runner's stand-in stream would be closed while the handler lives on
    stream = sys.__stderr__ or sys.stderr
    for handler in logging.getLogger("ultralytics").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


def resolve_model(model: str) -> str:
    """Return a model reference Ultralytics can build without any download, or raise UserError.

    YAML names such as 'yolo11n.yaml' are looked up in Ultralytics' bundled model configs; a .pt must be a
    local file, because a bare name like 'yolo11n.pt' would make Ultralytics download weights. A local file is
    checked to be what it claims (a model YAML with a backbone and a head; a PyTorch checkpoint), so a wrong file
    is one line here, not a crash in the first probe.
    """
    if not model.strip():
        raise UserError(f"--model is empty: give an Ultralytics model YAML (e.g. {DEFAULT_MODEL}) or a local .pt")
    p = Path(model).expanduser()
    suffix = p.suffix.lower()
    if p.is_dir():
        raise UserError(f"model {model!r} is a folder: give an Ultralytics model YAML or a local .pt file")
    if suffix in (".yaml", ".yml"):
        if p.is_file():
            _check_model_yaml(p)
            return str(p.resolve())
        import_quietly()
        from ultralytics.nn.tasks import yaml_model_load

        try:  # resolves scale names: 'yolo11n.yaml' is 'yolo11.yaml' at scale n
            yaml_model_load(model)
        except (FileNotFoundError, AssertionError, OSError) as e:
            raise UserError(f"unknown model {model!r}: no such YAML file or Ultralytics model config") from e
        return model
    if suffix == ".pt":
        if p.is_file():
            _check_checkpoint(p)
            return str(p.resolve())
        raise UserError(
            f"model file {model!r} not found; autotune never downloads weights: give a local .pt path "
            f"or a model YAML such as {DEFAULT_MODEL} (built from scratch)"
        )
    raise UserError(f"unknown model {model!r}: give an Ultralytics model YAML (e.g. {DEFAULT_MODEL}) or a local .pt")


def _check_model_yaml(p: Path) -> None:
    """An Ultralytics model YAML has a backbone and a head (a data.yaml given as --model has neither)."""
    import yaml

    try:
        cfg = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise UserError(f"model {p}: not a readable YAML file ({type(e).__name__})") from None
    if not isinstance(cfg, dict) or "backbone" not in cfg or "head" not in cfg:
        hint = " (it looks like a data.yaml: pass it as --data)" if isinstance(cfg, dict) and "train" in cfg else ""
        raise UserError(f"model {p} is not an Ultralytics model YAML: it has no 'backbone' and 'head'{hint}")


def _check_checkpoint(p: Path) -> None:
    """A PyTorch checkpoint is a zip archive holding a pickle (torch.save since 1.6), or a bare legacy pickle."""
    import zipfile

    try:
        with open(p, "rb") as f:
            head = f.read(2)
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                if any(n.endswith("data.pkl") for n in z.namelist()):
                    return
        elif head[:1] == b"\x80":  # a pickle's protocol opcode: the format before torch 1.6
            return
    except (OSError, zipfile.BadZipFile):
        pass
    raise UserError(f"model {p} is not a PyTorch checkpoint (.pt): give an Ultralytics weights file or a model YAML")


# -- patches ----------------------------------------------------------------------------------------------------


def offline_amp_check(model: Any) -> bool:
    """Stand-in for Ultralytics' check_amp, which downloads weights to compare FP32 and AMP detections.

    Runs a convolution in FP32 and under autocast on the model's device and checks the results are finite and
    close; broken AMP (NaNs or garbage on some GPUs) fails it. CPU and MPS never use AMP in Ultralytics.
    """
    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    try:
        conv = torch.nn.Conv2d(3, 16, 3).to(device)
        x = torch.randn(2, 3, 64, 64, device=device)
        with torch.no_grad():
            ref = conv(x)
            with torch.autocast("cuda"):
                amp = conv(x)
        return bool(torch.isfinite(amp).all() and torch.allclose(amp.float(), ref, atol=0.05, rtol=0.05))
    except RuntimeError:
        return False


def no_font(*_args: Any, **_kwargs: Any) -> None:
    """Stand-in for Ultralytics' check_font, which check_det_dataset calls for every dataset, plots or not: with
    no Arial.ttf in its settings folder it asks GitHub for one (a DNS look-up and an HTTPS request, even with
    YOLO_OFFLINE). Fonts only label plots, which autotune never draws with Ultralytics."""
    return None


def patch_downloads() -> None:
    """Nothing Ultralytics does for autotune downloads: its AMP check (weights) and its font check are ours."""
    import ultralytics.data.utils as ul_data
    import ultralytics.engine.trainer as ul_trainer

    ul_trainer.check_amp = offline_amp_check
    ul_data.check_font = no_font


def restore_workers(trainer: Any, workers: int) -> None:
    """Ultralytics forces workers=0 on a CPU; the user asked for a number, and autotune's own training run gives it
    them. Call from on_pretrain_routine_start, before any dataloader exists."""
    trainer.args.workers = workers


def set_val_batch(trainer: Any, batch: int) -> None:
    """Ultralytics builds the validation loader at 2x the training batch and has no setting for it: build it at
    `batch` instead (the rectangular batches it validates in follow). Call from on_pretrain_routine_start, before
    any dataloader exists."""
    build = trainer.get_dataloader

    def get_dataloader(dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train") -> Any:
        return build(dataset_path, batch if mode == "val" else batch_size, rank=rank, mode=mode)

    trainer.get_dataloader = get_dataloader


def val_batch_of(batch: int, val_batch: int | None) -> int:
    """The validation batch Ultralytics runs: the one asked for, else its 2x the training batch."""
    return val_batch if val_batch else 2 * batch


def autocast_arg(trainer: Any) -> Any:
    """What Ultralytics' training loop passes to its autocast: bfloat16 for amp=bf16, else its AMP flag."""
    import torch

    return torch.bfloat16 if getattr(trainer.args, "amp", None) == "bf16" else trainer.amp


def keep_oom_an_oom(trainer: Any) -> None:
    """Ultralytics halves the batch and retries after an OOM in the first epoch; a probe's OOM must stay an OOM.
    Call from on_train_epoch_start."""
    trainer._oom_retries = 3


def close_loaders(trainer: Any, which: tuple[str, ...] = ("train_loader", "test_loader")) -> None:
    """Stop a trainer's loader workers: none may outlive a probe or a run."""
    for name in which:
        loader = getattr(trainer, name, None)
        if loader is not None and hasattr(loader, "close"):
            loader.close()


@dataclass
class CacheTimer:
    """Times Ultralytics' BaseDataset.cache_images per dataset (train and val)."""

    # (prefix, images, seconds, bytes, .npy files there afterwards: fewer than images when a disk filled up, which
    # Ultralytics only warns about, deleting each .npy it failed to write)
    records: list[tuple[str, int, float, int, int]] = field(default_factory=list)

    def install(self) -> Callable[[], None]:
        """Patch the class; returns the undo."""
        from ultralytics.data.base import BaseDataset

        original = BaseDataset.cache_images
        timer = self

        def timed(ds: Any) -> None:
            t0 = time.perf_counter()
            original(ds)
            dt = time.perf_counter() - t0
            written = [f for f in ds.npy_files if f.exists()] if ds.cache == "disk" else []
            if ds.cache == "disk":
                nbytes = sum(f.stat().st_size for f in written)
            else:  # ram: resized images, height x width x channels bytes (uint8)
                nbytes = sum(h * w * ds.channels for h, w in (hw for hw in ds.im_hw if hw))
            timer.records.append((str(ds.prefix), ds.ni, dt, nbytes, len(written) if ds.cache == "disk" else ds.ni))

        BaseDataset.cache_images = timed

        def undo() -> None:
            BaseDataset.cache_images = original

        return undo


# Ultralytics' own checks before it builds a cache (BaseDataset.check_cache_ram / check_cache_disk): it needs
# twice the cache's size in available RAM, and the .npy files' size plus 10% free on disk, or it drops the cache.
RAM_MARGIN = 2.0
DISK_MARGIN = 1.1


def cache_fits(mode: str, cache_bytes: int, available: int) -> bool:
    """Ultralytics' rule for whether a cache of this size may be built with this much RAM (ram) or disk (disk)."""
    return {"ram": RAM_MARGIN, "disk": DISK_MARGIN}.get(mode, 0.0) * cache_bytes <= available


# -- what a trainer really uses -----------------------------------------------------------------------------------


def effective(trainer: Any) -> dict[str, Any]:
    """The settings a trainer really runs with, read once its loaders and optimizer exist (on_pretrain_routine_end)."""
    loader = trainer.train_loader
    ds = loader.dataset
    return {
        "batch": int(trainer.batch_size),
        "workers": int(loader.num_workers),
        "imgsz": int(trainer.args.imgsz),
        "cache": ds.cache or "none",
        "amp": bool(trainer.amp),
        "accumulate": int(trainer.accumulate),
        "optimizer": type(trainer.optimizer).__name__,
        "device": str(trainer.device),
    }


def mosaic_on(dataset: Any) -> bool | None:
    """Whether a training dataset's transforms include mosaic with a non-zero probability; None if it cannot tell.

    Ultralytics closes mosaic by rebuilding the transforms with mosaic=0.0 (dataset.close_mosaic), so the
    Mosaic transform's probability is what the loader's workers actually apply.
    """
    seen: list[Any] = [getattr(dataset, "transforms", None)]
    while seen:
        t = seen.pop()
        if t is None:
            continue
        if type(t).__name__ == "Mosaic":
            return float(getattr(t, "p", 0.0)) > 0
        seen.extend(getattr(t, "transforms", None) or [])
    return None if getattr(dataset, "transforms", None) is None else False


def loader_worker_pids(loader: Any) -> list[int]:
    """Pids of the live worker processes of an Ultralytics InfiniteDataLoader (torch keeps them in _workers)."""
    it = getattr(loader, "iterator", None)
    workers = getattr(it, "_workers", None) or []
    return [w.pid for w in workers if w.is_alive()]


def ready_batches(loader: Any) -> int | None:
    """Batches the loader's workers have finished and the trainer has not taken yet (its prefetch queue's depth).

    Read from torch's multiprocessing iterator: the results queue (and, with pinned memory, the queue the pinning
    thread has not reached yet) plus batches that arrived out of order and wait in `_task_info`. 0 with no workers
    or before the workers start; None where the depth cannot be read (multiprocessing queues have no size on
    macOS) or torch's internals differ.
    """
    it = getattr(loader, "iterator", None)
    if it is None or getattr(loader, "num_workers", 0) == 0:
        return 0
    try:
        n = it._data_queue.qsize()
        if it._worker_result_queue is not it._data_queue:  # the pin-memory thread's inbox
            n += it._worker_result_queue.qsize()
        return n + sum(1 for info in list(it._task_info.values()) if len(info) == 2)
    except (AttributeError, NotImplementedError, OSError):
        return None


def workers_note(asked: int, started: int, n_images: int, batch: int) -> str | None:
    """The warning for Ultralytics' own workers cap, which the full run shares (so it is expected, not refused)."""
    if started == asked:
        return None
    return (
        f"Ultralytics starts {started} loader workers, not {asked}: at most the CPU count per GPU and no "
        f"more than the {-(-n_images // batch)} batches of an epoch; your full run gets the same"
    )


def mismatches(
    config: TrainConfig, eff: dict[str, Any], opt_args: dict[str, Any], cuda: bool, workers_expected: int | None = None
) -> list[tuple[str, str]]:
    """Every silent change Ultralytics made to what was asked, as (status, reason).

    `workers_expected`: what Ultralytics' own cap gives for the full run (machine.loader_workers); a loader
    with that many workers is what the user's training gets too, so it is no change."""
    out: list[tuple[str, str]] = []
    workers = config.workers if workers_expected is None else workers_expected
    if eff["batch"] != config.batch:
        out.append(("oom", f"Ultralytics reduced batch {config.batch} -> {eff['batch']} after running out of memory"))
    if eff["imgsz"] != config.imgsz:
        out.append(
            ("infeasible", f"Ultralytics rounded imgsz {config.imgsz} -> {eff['imgsz']} (a multiple of the stride)")
        )
    if eff["cache"] != config.cache:
        out.append(
            ("infeasible", f"Ultralytics dropped cache={config.cache} (-> {eff['cache']}): not enough RAM or disk")
        )
    if eff["workers"] != workers:
        out.append(
            (
                "infeasible",
                f"Ultralytics capped workers {workers} -> {eff['workers']} "
                f"(at most the CPU count per GPU, and no more than the loader's batches)",
            )
        )
    elif workers > 0 and eff["loader_processes"] != workers:
        out.append(("crashed", f"{eff['loader_processes']} loader processes alive, {workers} expected"))
    if cuda and config.amp and not eff["amp"]:
        out.append(("infeasible", "the AMP check failed on this GPU: Ultralytics trains in FP32"))
    if eff["accumulate"] != config.accumulate:
        out.append(("infeasible", f"accumulate {config.accumulate} expected, Ultralytics used {eff['accumulate']}"))
    if eff["optimizer"] != opt_args["optimizer"]:
        out.append(("infeasible", f"optimizer {opt_args['optimizer']} asked, Ultralytics built {eff['optimizer']}"))
    return out


def expected_workers(config: TrainConfig, n_images: int) -> int:
    """The loader workers Ultralytics starts for `config` on this machine (its own cap, which the full run shares)."""
    from autotune.measure.machine import loader_workers

    gpus = 0
    if config.device != "cpu":
        import torch

        gpus = torch.cuda.device_count()
    return loader_workers(config.workers, config.batch, n_images, os.cpu_count() or 1, gpus)
