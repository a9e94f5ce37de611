"""Tests for the embedded synthetic PPE dataset (autotune.demo). Small specs keep them fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from autotune.data import demo
from autotune.data.demo import CLASSES, DemoSpec, default_demo_dir, render_frame, write_demo_dataset
from autotune.errors import UserError

SMALL = DemoSpec(images=12, width=320, height=180)  # 10 train + 2 val


def _files(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every image and label file under ``root``."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for sub in ("images", "labels")
        for p in sorted((root / sub).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoDataset:
    """One SMALL dataset generated in-process, shared by the read-only tests (a space in the path on purpose)."""
    return write_demo_dataset(SMALL, tmp_path_factory.mktemp("demo") / "ppe data", processes=1)


def test_layout_counts_and_return_value(small_dataset: demo.DemoDataset) -> None:
    ds = small_dataset
    assert (ds.n_train, ds.n_val) == (10, 2)
    assert not ds.reused and ds.seconds > 0
    for split, n in (("train", ds.n_train), ("val", ds.n_val)):
        images = sorted((ds.root / "images" / split).glob("ppe_*.jpg"))
        labels = sorted((ds.root / "labels" / split).glob("ppe_*.txt"))
        assert len(images) == len(labels) == n
        assert [p.stem for p in images] == [p.stem for p in labels]
    assert (ds.root / "images" / "train" / "ppe_000000.jpg").is_file()
    assert (ds.root / "images" / "val" / "ppe_000011.jpg").is_file()
    assert ds.bytes == sum(p.stat().st_size for p in (ds.root / "images").rglob("*.jpg"))
    img = cv2.imread(str(ds.root / "images" / "train" / "ppe_000003.jpg"))
    assert img is not None and img.shape == (SMALL.height, SMALL.width, 3)
    marker = json.loads((ds.root / demo.MARKER).read_text())
    assert marker["spec"] == {
        "images": 12,
        "width": 320,
        "height": 180,
        "val_fraction": 0.2,
        "seed": 0,
        "quality": 90,
    }
    assert marker["complete"] is True
    assert not list(ds.root.rglob("*.tmp")), "temporary files left behind"


def test_data_yaml_is_accepted_by_ultralytics(small_dataset: demo.DemoDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(small_dataset.data_yaml.read_text())
    assert set(data) >= {"path", "train", "val", "names"}
    assert Path(data["path"]).is_absolute() and Path(data["path"]) == small_dataset.root
    assert (data["train"], data["val"]) == ("images/train", "images/val")
    assert data["names"] == {0: "person", 1: "helmet", 2: "vest"}

    monkeypatch.setenv("YOLO_OFFLINE", "1")
    from ultralytics.data.utils import check_det_dataset

    checked = check_det_dataset(str(small_dataset.data_yaml))
    assert checked["nc"] == 3
    assert [checked["names"][i] for i in range(3)] == list(CLASSES)
    assert Path(checked["train"]).is_dir() and Path(checked["val"]).is_dir()


def test_labels_are_valid_yolo(small_dataset: demo.DemoDataset) -> None:
    counts = []
    for label in sorted((small_dataset.root / "labels").rglob("*.txt")):
        lines = label.read_text().splitlines()
        counts.append(len(lines))
        for line in lines:
            fields = line.split()
            assert len(fields) == 5, line
            assert fields[0] in {"0", "1", "2"}, line
            assert all(len(f.split(".")[1]) == 6 for f in fields[1:]), "6 decimals expected: " + line
            cx, cy, w, h = map(float, fields[1:])
            assert 0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0, line
            assert 0.0 < w <= 1.0 and 0.0 < h <= 1.0, line
            assert cx - w / 2 >= -1e-6 and cx + w / 2 <= 1 + 1e-6 and cy - h / 2 >= -1e-6 and cy + h / 2 <= 1 + 1e-6
    assert max(counts) >= 3, f"expected at least one busy image, got counts {counts}"


def test_long_tailed_scenes() -> None:
    """Across 60 frames: crowds, empty frames, all three classes, and tiny to large people."""
    spec = DemoSpec(images=60, width=256, height=144)
    per_frame = [render_frame(spec, i)[1] for i in range(spec.images)]
    persons = [sum(1 for box in boxes if box[0] == 0) for boxes in per_frame]
    assert max(persons) >= 15, f"no crowd in {persons}"
    assert min(persons) == 0, "no empty frame"
    assert sum(1 for p in persons if 1 <= p <= 6) >= 30, "most frames should have a handful of people"
    classes = {box[0] for boxes in per_frame for box in boxes}
    assert classes == {0, 1, 2}
    heights = [box[4] for boxes in per_frame for box in boxes if box[0] == 0]
    assert min(heights) < 0.1 and max(heights) > 0.4, "person scale should vary from far to close-up"
    for boxes in per_frame:  # helmets / vests never outnumber people
        n = sum(1 for b in boxes if b[0] == 0)
        assert sum(1 for b in boxes if b[0] == 1) <= n and sum(1 for b in boxes if b[0] == 2) <= n


def test_deterministic_and_independent_of_process_count(small_dataset: demo.DemoDataset, tmp_path: Path) -> None:
    again = write_demo_dataset(SMALL, tmp_path / "two-procs", processes=2)
    assert _files(again.root) == _files(small_dataset.root)
    # The files are exactly render_frame + cv2.imencode at the spec's quality.
    img, labels = render_frame(SMALL, 4)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, SMALL.quality])
    assert ok and buf.tobytes() == (small_dataset.root / "images" / "train" / "ppe_000004.jpg").read_bytes()
    assert len(labels) == len((small_dataset.root / "labels" / "train" / "ppe_000004.txt").read_text().splitlines())


def test_progress_reports_every_frame(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    write_demo_dataset(
        DemoSpec(images=4, width=64, height=48), tmp_path / "p", progress=lambda d, t: calls.append((d, t)), processes=1
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_different_seeds_differ() -> None:
    a, _ = render_frame(SMALL, 0)
    b, _ = render_frame(DemoSpec(images=12, width=320, height=180, seed=1), 0)
    c, _ = render_frame(SMALL, 1)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    again, _ = render_frame(SMALL, 0)
    assert np.array_equal(a, again)


def test_resume_regenerates_only_missing_files(small_dataset: demo.DemoDataset, tmp_path: Path) -> None:
    root = tmp_path / "resume"
    write_demo_dataset(SMALL, root, processes=1)
    before = _files(root)
    victim = root / "images" / "train" / "ppe_000005.jpg"
    label = root / "labels" / "val" / "ppe_000010.txt"
    victim.unlink()
    label.unlink()
    keep = root / "images" / "train" / "ppe_000001.jpg"
    mtime = keep.stat().st_mtime_ns
    again = write_demo_dataset(SMALL, root, processes=1)
    assert not again.reused
    assert _files(root) == before
    assert keep.stat().st_mtime_ns == mtime, "an existing image was rewritten"


def test_interrupted_run_is_resumed(tmp_path: Path) -> None:
    """A folder with an incomplete marker (a run killed half-way) is finished, not refused."""
    root = tmp_path / "interrupted"
    write_demo_dataset(SMALL, root, processes=1)
    reference = _files(root)
    for p in list((root / "images" / "val").iterdir()):
        p.unlink()
    marker = root / demo.MARKER
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "complete": False}))
    (root / "images" / "train" / ".ppe_000002.jpg.123.tmp").write_bytes(b"half a jpeg")
    result = write_demo_dataset(SMALL, root, processes=1)
    assert not result.reused
    assert _files(root) == reference
    assert json.loads(marker.read_text())["complete"] is True


def test_reuse_is_fast_and_touches_nothing(small_dataset: demo.DemoDataset) -> None:
    before = _files(small_dataset.root)
    start = time.perf_counter()
    again = write_demo_dataset(SMALL, small_dataset.root)
    assert time.perf_counter() - start < 1.0
    assert again.reused and again.seconds == 0.0
    assert (again.n_train, again.n_val, again.bytes) == (
        small_dataset.n_train,
        small_dataset.n_val,
        small_dataset.bytes,
    )
    assert _files(small_dataset.root) == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"images": 1},
        {"images": 0},
        {"width": 31},
        {"height": 16},
        {"quality": 0},
        {"quality": 101},
        {"val_fraction": 0.0},
        {"val_fraction": 1.0},
        {"val_fraction": -0.1},
        {"images": 2, "val_fraction": 0.9},  # rounds to 2 val images, leaving no training image
        {"seed": -1},
    ],
)
def test_bad_specs_are_refused(kwargs: dict, tmp_path: Path) -> None:
    with pytest.raises(UserError):
        write_demo_dataset(DemoSpec(**kwargs), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_bad_process_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        write_demo_dataset(SMALL, tmp_path / "x", processes=0)


def test_foreign_folder_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(UserError, match="not empty"):
        write_demo_dataset(SMALL, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_empty_existing_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    ds = write_demo_dataset(DemoSpec(images=3, width=64, height=48), tmp_path / "empty", processes=1)
    assert (ds.n_train, ds.n_val) == (2, 1)


def test_other_spec_in_folder_is_refused(small_dataset: demo.DemoDataset) -> None:
    before = _files(small_dataset.root)
    with pytest.raises(UserError, match="different spec"):
        write_demo_dataset(DemoSpec(images=12, width=320, height=180, seed=7), small_dataset.root)
    with pytest.raises(UserError, match="different spec"):
        write_demo_dataset(DemoSpec(images=12, width=320, height=180, quality=80), small_dataset.root)
    assert _files(small_dataset.root) == before


def test_cache_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AUTOTUNE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert demo.cache_root() == tmp_path / "home" / ".cache" / "autotune"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo.cache_root() == tmp_path / "xdg" / "autotune"
    monkeypatch.setenv("AUTOTUNE_CACHE", str(tmp_path / "at"))
    assert demo.cache_root() == tmp_path / "at"
    assert default_demo_dir(DemoSpec()) == tmp_path / "at" / "demo" / "ppe-v1-1000-1280x720-s0"
    assert default_demo_dir(SMALL) == tmp_path / "at" / "demo" / "ppe-v1-12-320x180-s0"
    # Specs that differ only in quality / val_fraction must not share a folder.
    assert len({default_demo_dir(DemoSpec(quality=q, val_fraction=v)) for q in (80, 90) for v in (0.1, 0.2)}) == 4


def test_default_folder_under_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTOTUNE_CACHE", str(tmp_path / "cache"))
    spec = DemoSpec(images=2, width=48, height=32)
    ds = write_demo_dataset(spec, processes=1)
    assert ds.root == tmp_path / "cache" / "demo" / "ppe-v1-2-48x32-s0"
    assert write_demo_dataset(spec).reused


def test_frame_shape_and_texture() -> None:
    """A default 1280x720 frame is textured like a photo: q90 JPEG well above what flat colours give."""
    img, labels = render_frame(DemoSpec(), 0)
    assert img.dtype == np.uint8 and img.shape == (720, 1280, 3)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok and len(buf) > 100_000, f"JPEG only {len(buf)} bytes: frame is not textured enough"
    for cls, cx, cy, w, h in labels:
        assert cls in (0, 1, 2) and 0 <= cx <= 1 and 0 <= cy <= 1 and w > 0 and h > 0
