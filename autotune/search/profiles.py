"""Profile files: the winning configuration as an Ultralytics cfg YAML, with autotune's metadata beside it.

Ultralytics rejects unknown keys, so the YAML holds only training arguments (data and model included: without
them `yolo cfg=...` would fall back to a dataset and weights it downloads); what autotune measured goes in
comments and in a JSON sidecar with the same name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from autotune.errors import UserError
from autotune.files import atomic_write
from autotune.records.config import TrainConfig, Workload


@dataclass(frozen=True)
class SavedProfile:
    cfg: dict[str, Any]  # Ultralytics training arguments
    meta: dict[str, Any]  # study, machine, measured images/s, projected epoch, ...


def train_args(config: TrainConfig, workload: Workload) -> dict[str, Any]:
    """The Ultralytics arguments that reproduce a measured configuration."""
    args: dict[str, Any] = {
        "task": "detect",
        "mode": "train",
        "model": workload.model,
        "data": workload.data,
        "epochs": workload.epochs,
        "batch": config.batch,
        "workers": config.workers,
        "imgsz": config.imgsz,
        "cache": False if config.cache == "none" else config.cache,
        "device": config.device,
        "amp": config.amp,
        "nbs": config.nbs,
        # 'auto' decides on the full run's length, exactly as the probes pinned it
        "optimizer": config.optimizer,
    }
    if config.compile != "off":  # measured compiled: train compiled
        args["compile"] = config.ultralytics_compile()
    return args


def write(path: Path, config: TrainConfig, workload: Workload, meta: dict[str, Any]) -> Path:
    """Write path (YAML) and path.with_suffix('.json') (metadata); return the YAML path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# autotune profile: study {meta.get('study')}, trial {meta.get('trial')}",
        f"# measured {meta.get('images_per_s', 0):.1f} images/s, projected epoch {meta.get('epoch_s', 0):.1f} s "
        f"({meta.get('n_train')} training images)",
        f"# machine: {meta.get('machine_summary')}",
        "# train with it: yolo cfg=THIS_FILE   (Ultralytics' own CLI; or model.train(cfg=THIS_FILE))",
    ]
    if meta.get("resize") and not Path(meta["resize"]["data"]).is_file():
        lines.append(
            f"# it trains from a copy of the dataset pre-resized to {config.imgsz} px: make it first with "
            f"`{meta['resize']['command']}` (`autotune train --best` does it for you)"
        )
    if config.device == "cpu" and config.workers > 0:
        lines.append(
            f"# note: on a CPU Ultralytics forces workers=0, so `yolo cfg=` cannot reproduce the {config.workers} "
            "loader workers measured here (autotune's own training command restores them)"
        )
    body = yaml.safe_dump(train_args(config, workload), sort_keys=False)
    # the sidecar first, the YAML last: a profile that is there is whole, with its metadata
    atomic_write(path.with_suffix(".json"), json.dumps({**meta, "config": config.to_dict()}, indent=1))
    atomic_write(path, "\n".join(lines) + "\n" + body)
    return path


def read(path: Path) -> SavedProfile:
    if not path.is_file():
        raise UserError(f"profile {path} not found (autotune search writes profiles/<study>.yaml)")
    try:
        cfg = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    side = path.with_suffix(".json")
    meta: Any = {}
    if side.is_file():
        try:
            meta = json.loads(side.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(
                f"{side}: not valid JSON ({str(e).splitlines()[0]}); it is the profile's metadata"
            ) from None
        if not isinstance(meta, dict):
            raise UserError(f"{side}: expected a JSON object (the profile's metadata), got {type(meta).__name__}")
    return SavedProfile(cfg=cfg or {}, meta=meta)
