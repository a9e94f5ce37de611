"""Reading data.yaml like Ultralytics, choosing subsets, staging links."""

import os
from pathlib import Path

import pytest
import yaml
from conftest import make_dataset, tree_digest

from autotune.errors import UserError
from autotune.measure.dataset import choose_subset, count_objects, label_path, load_dataset, stage, stale_npy


def test_load_dataset_dirs(tmp_path):
    data = make_dataset(tmp_path / "ds", n_train=5, n_val=2)
    info = load_dataset(data)
    assert info.names == ("a", "b", "c") and info.nc == 3
    assert len(info.train) == 5 and len(info.val) == 2
    assert all(os.path.isabs(p) for p in info.train)


def test_load_dataset_txt_list_relative_path_and_names_dict(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, n_train=3, n_val=1)
    (root / "train.txt").write_text("./images/train/im0.jpg\n./images/train/im2.jpg\n")
    data = root / "custom.yaml"
    data.write_text(yaml.safe_dump({"path": "ds", "train": "train.txt", "val": ["images/val"], "names": {0: "x"}}))
    cwd = Path.cwd()
    os.chdir(tmp_path)  # 'path: ds' is relative to where the user runs, as in Ultralytics
    try:
        info = load_dataset(data)
    finally:
        os.chdir(cwd)
    assert [Path(p).name for p in info.train] == ["im0.jpg", "im2.jpg"]
    assert info.names == ("x",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("train: [unclosed", "not valid YAML"),
        ("- just\n- a list", "expected a mapping"),
        ("val: images/val\nnames: [a]", "'train:' key missing"),
        ("train: images/train\nval: images/val", "give 'names'"),
        ("train: nowhere\nval: images/val\nnames: [a]", "does not exist"),
        ("train: images/train\nval: images/val\nnames: [a, b]\nnc: 3", "'nc' is 3"),
    ],
)
def test_load_dataset_errors(tmp_path, content, message):
    make_dataset(tmp_path, n_train=2, n_val=1)
    data = tmp_path / "bad.yaml"
    data.write_text(content)
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        load_dataset(data)


def test_load_dataset_missing_file_and_no_images(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset(tmp_path / "nope.yaml")
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "train" / "notes.txt").write_text("no images here")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"train": "images/train", "val": "images/train", "names": ["a"]}))
    with pytest.raises(UserError, match="no images found"):
        load_dataset(tmp_path / "d.yaml")


def test_label_path_rule():
    assert label_path("/d/images/train/a.b.jpg") == "/d/labels/train/a.b.txt"
    assert label_path("/images/x/images/y/z.png") == "/images/x/labels/y/z.txt"


def test_choose_subset_keeps_the_most_crowded_images():
    counts = [1] * 100
    counts[37] = 50
    counts[80] = 40
    chosen = choose_subset(counts, n=20, seed=0, top_share=0.1)
    assert len(chosen) == 20 and len(set(chosen)) == 20
    assert 37 in chosen and 80 in chosen
    assert choose_subset(counts, n=20, seed=0) == chosen  # seeded
    assert choose_subset(counts, n=500, seed=0) == list(range(100))


def test_stage_links_and_leaves_source_untouched(tmp_path):
    data = make_dataset(tmp_path / "ds", n_train=6, n_val=2)
    before = tree_digest(tmp_path / "ds")
    info = load_dataset(data)
    counts = count_objects(info.train)
    assert counts == [0, 1, 2, 3, 0, 1]
    staged = stage(info, [1, 3], [0], tmp_path / "scratch", counts)
    assert [Path(p).is_symlink() for p in staged.train] == [True, True]
    assert os.readlink(staged.train[0]) == info.train[1]
    assert staged.train_objects == (1, 3)
    label = label_path(staged.train[1])
    assert Path(label).is_symlink() and Path(label).read_text().count("\n") == 2
    staged_yaml = yaml.safe_load(Path(staged.data_yaml).read_text())
    assert staged_yaml["names"] == {0: "a", 1: "b", 2: "c"}
    assert load_dataset(staged.data_yaml).train == staged.train
    assert tree_digest(tmp_path / "ds") == before


def test_stale_npy_are_found(tmp_path):
    data = make_dataset(tmp_path, n_train=3, n_val=1)
    info = load_dataset(data)
    Path(info.train[0]).with_suffix(".npy").write_bytes(b"x")
    assert stale_npy(info.train) == [str(Path(info.train[0]).with_suffix(".npy"))]
