"""Shared fixtures: tiny datasets made on the spot, and a session-wide tiny demo workload."""

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

os.environ.setdefault("YOLO_OFFLINE", "1")


def make_dataset(root: Path, n_train: int = 6, n_val: int = 2, size: tuple[int, int] = (64, 48)) -> Path:
    """A small YOLO dataset: noisy JPEGs, image i has i % 4 objects. Returns its data.yaml."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            cv2.imwrite(str(root / "images" / split / f"im{i}.jpg"), img)
            lines = [f"{k % 3} 0.5 0.5 0.2 0.2" for k in range(i % 4)]
            (root / "labels" / split / f"im{i}.txt").write_text("\n".join(lines))
    data = root / "data.yaml"
    data.write_text(
        yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val", "names": ["a", "b", "c"]})
    )
    return data


def tree_digest(root: Path) -> dict[str, str]:
    """Every file and link under root with a hash of its bytes: equal digests mean byte-for-byte unchanged."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """The embedded workload at test size (real textured frames, small): made once per session.

    The folder name has a space: paths with spaces must work everywhere.
    """
    from autotune.data.demo import DemoSpec, write_demo_dataset

    root = tmp_path_factory.mktemp("demo") / "tiny demo"
    ds = write_demo_dataset(DemoSpec(images=120, width=320, height=180), out=root)
    return ds.data_yaml
