"""autotune resize: a pre-resized copy of a dataset, checked on small generated datasets."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import make_dataset, tree_digest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.data import resize as rz
from autotune.errors import UserError
from autotune.files import temp_name
from autotune.measure.cachebench import CacheBench, CacheBuild, ModeRead
from autotune.measure.dataset import label_path, load_dataset
from autotune.measure.profile import cache_advice

runner = CliRunner()
IMGSZ = 64


def _dataset(root: Path) -> Path:
    """make_dataset's JPEGs at an odd size, plus a portrait JPEG, a PNG, a small image and one without a label."""
    data = make_dataset(root, n_train=4, n_val=2, size=(203, 117))
    rng = np.random.default_rng(1)
    extra = {"tall.jpg": (90, 250), "wide.png": (300, 200), "small.jpg": (40, 30), "nolabel.jpg": (150, 150)}
    for name, (w, h) in extra.items():
        cv2.imwrite(str(root / "images" / "train" / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        if name != "nolabel.jpg":
            (root / "labels" / "train" / f"{Path(name).stem}.txt").write_text("1 0.25 0.75 0.1 0.3\n0 0.5 0.5 1 1\n")
    return data


@pytest.fixture
def ds(tmp_path) -> Path:
    return _dataset(tmp_path / "ds")


def _size(path: str | Path) -> tuple[int, int]:
    h, w = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2]
    return w, h


def test_target_size_follows_ultralytics_rule():
    assert rz.target_size(100, 50, 64) == (64, 32)
    assert rz.target_size(50, 100, 64) == (32, 64)
    assert rz.target_size(64, 10, 64) == (64, 10)  # at imgsz already: unchanged
    assert rz.target_size(10, 10, 64) == (10, 10)  # never upscaled
    w, h = rz.target_size(1280, 720, 128)
    assert w == 128 and abs(h - 72) <= 1  # ceil, as Ultralytics' load_image: 73 here


def test_copy_keeps_labels_aspect_formats_and_the_original(ds, tmp_path):
    before = tree_digest(ds.parent)
    result = rz.resize_dataset(ds, IMGSZ, tmp_path / "out", processes=1)
    assert tree_digest(ds.parent) == before  # the original, byte for byte
    info, copy = load_dataset(ds), load_dataset(result.data_yaml)
    out = Path(result.out)
    assert copy.names == info.names
    assert len(copy.train) == len(info.train) and len(copy.val) == len(info.val)
    assert all(Path(p).is_relative_to(out) for p in copy.train + copy.val)  # points at the copy
    assert result.resized == 9 and result.as_is == 1 and result.already == 0 and not result.corrupt
    for src in info.train + info.val:
        dst = out / os.path.relpath(src, ds.parent)
        w0, h0 = _size(src)
        w, h = _size(dst)
        if max(w0, h0) <= IMGSZ:
            assert dst.read_bytes() == Path(src).read_bytes()  # copied as it is
        else:
            assert max(w, h) == IMGSZ
            exact = min(w0, h0) * IMGSZ / max(w0, h0)
            assert abs(min(w, h) - exact) <= 1
            assert (w >= h) == (w0 >= h0)
        assert dst.read_bytes()[:4] == Path(src).read_bytes()[:4]  # JPEG stays JPEG, PNG stays PNG
        lbl, new_lbl = Path(label_path(src)), Path(label_path(str(dst)))
        assert new_lbl.exists() == lbl.exists()
        if lbl.exists():
            assert new_lbl.read_bytes() == lbl.read_bytes()
            scale = min(1.0, IMGSZ / max(w0, h0))  # exact: the long side's ratio
            for line in lbl.read_text().splitlines():  # each box, in pixels, is the original box scaled
                _, cx, cy, bw, bh = map(float, line.split())
                for norm, new, old in ((cx, w, w0), (bw, w, w0), (cy, h, h0), (bh, h, h0)):
                    assert abs(norm * new - norm * old * scale) <= 1  # the short side rounds up by < 1 px
    assert result.copy_bytes < result.source_bytes
    label_bytes = sum(os.path.getsize(p) for p in out.rglob("*.txt"))
    assert 0.5 < result.estimated_bytes / (result.copy_bytes + label_bytes) < 2


def test_resume_writes_only_what_is_missing(ds, tmp_path):
    out = tmp_path / "out"
    first = rz.resize_dataset(ds, IMGSZ, out, processes=1)
    images = sorted(out.rglob("*.jpg")) + sorted(out.rglob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in images}
    again = rz.resize_dataset(ds, IMGSZ, out, processes=1)
    assert (again.resized, again.as_is, again.already) == (0, 0, first.images)
    assert {p: p.stat().st_mtime_ns for p in images} == stamps
    gone, killed = out / "images" / "train" / "im1.jpg", out / "images" / "train" / "im2.jpg"
    gone.unlink()
    # a killed run: the temp file is there (truncated), the final name is not
    tmp = temp_name(killed)
    tmp.write_bytes(killed.read_bytes()[:100])
    killed.unlink()
    third = rz.resize_dataset(ds, IMGSZ, out, processes=1)
    assert (third.resized, third.already) == (2, first.images - 2)
    assert not tmp.exists()
    assert _size(killed) == _size(gone) == (64, 37)  # 203x117 -> 64 x ceil(36.9)
    assert {p: p.stat().st_mtime_ns for p in images if p not in (gone, killed)} == {
        p: t for p, t in stamps.items() if p not in (gone, killed)
    }


def test_parallel_run_matches_one_process(ds, tmp_path):
    one = rz.resize_dataset(ds, IMGSZ, tmp_path / "one", processes=1)
    two = rz.resize_dataset(ds, IMGSZ, tmp_path / "two", processes=2)
    assert two.processes == 2
    digest = {k: v for k, v in tree_digest(Path(one.out)).items() if k not in ("data.yaml", rz.MARKER)}
    assert digest == {k: v for k, v in tree_digest(Path(two.out)).items() if k not in ("data.yaml", rz.MARKER)}


def test_list_files_and_yaml_lists(ds, tmp_path):
    root = ds.parent
    (root / "train.txt").write_text("".join(f"./images/train/im{i}.jpg\n" for i in range(4)))
    listed = root / "listed.yaml"
    listed.write_text(
        yaml.safe_dump({"train": "train.txt", "val": ["images/val"], "names": {0: "a", 1: "b", 2: "c"}, "nc": 3})
    )
    result = rz.resize_dataset(listed, IMGSZ, tmp_path / "out", processes=1)
    new = yaml.safe_load(Path(result.data_yaml).read_text())
    assert new["train"] == "train.txt" and new["val"] == ["images/val"] and new["nc"] == 3
    copy = load_dataset(result.data_yaml)
    assert [Path(p).name for p in copy.train] == [f"im{i}.jpg" for i in range(4)]
    assert all(Path(p).is_relative_to(result.out) and Path(p).is_file() for p in copy.train + copy.val)
    assert result.images == 6  # only what the YAML lists


def test_corrupt_images_are_skipped_and_named(ds, tmp_path):
    bad = ds.parent / "images" / "train" / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    (ds.parent / "labels" / "train" / "bad.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    out = tmp_path / "out"
    r = runner.invoke(app, ["resize", "--imgsz", str(IMGSZ), "--data", str(ds), "--out", str(out), "--processes", "1"])
    assert r.exit_code == 0, r.output
    assert "bad.jpg" in r.stderr and "unreadable" in r.stderr
    assert r.stdout.strip() == str(out / "data.yaml")
    assert not (out / "images" / "train" / "bad.jpg").exists() and not (out / "labels" / "train" / "bad.txt").exists()
    assert len(load_dataset(out / "data.yaml").train) == len(load_dataset(ds).train) - 1


def test_json_prints_one_object(ds, tmp_path):
    import json

    args = ["resize", "--imgsz", str(IMGSZ), "--data", str(ds), "--out", str(tmp_path / "o"), "--processes", "1"]
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["resized"] == 9 and d["data_yaml"] == str(tmp_path / "o" / "data.yaml") and d["loader_only"] == {}


def test_default_out_is_beside_the_dataset(ds):
    plan = rz.plan_resize(ds, IMGSZ)
    assert plan.out == str(ds.parent.with_name(f"ds-{IMGSZ}px"))


def _bad(args: list[str], expected: str):
    r = runner.invoke(app, ["resize", *args])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("autotune: error:") and expected in lines[0], lines[0]


@pytest.mark.parametrize(
    ("imgsz", "out", "expected"),
    [
        ("0", "o", "imgsz must be a whole number from 32"),
        ("-64", "o", "imgsz must be a whole number from 32"),
        ("1000", "o", "nothing to do"),
        ("64", "ds", "is the dataset"),
        ("64", "ds/images/small", "is inside the dataset"),
        ("64", ".", "contains the dataset"),
    ],
)
def test_refusals(ds, imgsz, out, expected):
    before = tree_digest(ds.parent.parent)
    _bad(["--imgsz", imgsz, "--data", str(ds), "--out", str(ds.parent.parent / out)], expected)
    assert tree_digest(ds.parent.parent) == before  # nothing written anywhere


def test_refuses_without_disk_room(ds, tmp_path, monkeypatch):
    monkeypatch.setattr(rz, "disk_free", lambda _: 10 * 2**20)
    _bad(["--imgsz", "64", "--data", str(ds), "--out", str(tmp_path / "o")], "not enough disk space")
    assert not (tmp_path / "o").exists()


def test_refuses_a_foreign_or_different_out(ds, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    _bad(["--imgsz", "64", "--data", str(ds), "--out", str(tmp_path / "busy")], "not empty")
    rz.resize_dataset(ds, 64, tmp_path / "o", processes=1)
    _bad(["--imgsz", "96", "--data", str(ds), "--out", str(tmp_path / "o")], "at imgsz 64")


def test_bad_quality_and_processes(ds, tmp_path):
    _bad(["--imgsz", "64", "--data", str(ds), "--out", str(tmp_path / "o"), "--quality", "0"], "quality")
    _bad(["--imgsz", "64", "--data", str(ds), "--out", str(tmp_path / "o"), "--processes", "0"], "processes")


def test_disk_check_and_cost_estimate():
    rz.check_disk(100 * 2**20, 200 * 2**20, "here")
    with pytest.raises(UserError, match="not enough disk space"):
        rz.check_disk(100 * 2**20, 170 * 2**20, "here")  # 110 MiB + 64 MiB margin > 170 MiB
    # 25,000 images at 20 ms each on 8 processes = 62.5 s, spread over 100 epochs
    assert rz.resize_cost_estimate(25_000, 0.02, epochs=100, processes=8) == pytest.approx(0.625)


def test_cache_advice_treats_the_resized_copy_like_a_cache():
    reads = (ModeRead("none", "warm", 0.010, 100.0), ModeRead("resized", "warm", 0.002, 500.0))
    builds = (CacheBuild("resized", 10, 0.2, 50_000, 1000, 5.0, 5_000_000, 10**11, True),)
    advice = cache_advice(CacheBench(128, 10, reads, builds, 300_000_000, 10**10, 10**11), 800, "warm")
    # 8 ms saved x 800 images = 6.4 s per epoch; a 5 s one-time resize pays off after 0.78 epochs
    assert advice[0].mode == "resized" and advice[0].break_even_epochs == pytest.approx(5 / 6.4)


@pytest.mark.integration
def test_cache_bench_reads_the_resized_sample(tmp_path):
    from autotune.measure.cachebench import measure_cache
    from autotune.records.config import ProbeOptions, TrainConfig, Workload

    data = make_dataset(tmp_path / "ds", n_train=8, n_val=2, size=(320, 180))
    bench = measure_cache(TrainConfig(imgsz=64, batch=2, workers=0), Workload(str(data)), ProbeOptions(), tmp_path)
    resized, original = bench.read("resized", "warm"), bench.read("none", "warm")
    assert resized is not None and bench.read("resized", "cold") is not None
    assert resized.per_image_s < original.per_image_s  # 64x36 decodes faster than 320x180 decoded and shrunk
    build = next(b for b in bench.builds if b.mode == "resized")
    assert build.sample_bytes > 0 and build.full_images == 10


@pytest.mark.integration
def test_probe_runs_on_a_resized_copy(tiny_demo, tmp_path):
    from autotune.measure.probe import probe
    from autotune.records.config import ProbeOptions, TrainConfig, Workload

    result = rz.resize_dataset(tiny_demo, 64, tmp_path / "small", processes=1)
    config = TrainConfig(imgsz=64, batch=4, workers=0, device="cpu")
    options = ProbeOptions(iters=3, warmup_min=1, warmup_max=6, scratch=str(tmp_path / "scratch"))
    p = probe(config, Workload(data=result.data_yaml), options)
    assert p.status == "ok", p.reason
