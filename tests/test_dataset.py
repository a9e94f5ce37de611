"""Reading data.yaml like Ultralytics, choosing subsets, staging links."""

import os
from pathlib import Path

import pytest
import yaml
from conftest import make_dataset, tree_digest

from autotune.errors import UserError
from autotune.measure.dataset import choose_subset, count_objects, label_path, load_dataset, stale_npy
from autotune.measure.staging import stage


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


# --- hardening: every bad input is one line naming the file --------------------------------------------------------

BILLION_LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)
SPLITS = "train: images/train\nval: images/val\n"


def refused(data: Path, **kwargs) -> str:
    """The UserError message load_dataset gives; it must be one line and name the data file."""
    with pytest.raises(UserError) as e:
        load_dataset(data, **kwargs)
    message = str(e.value)
    assert len(message.splitlines()) == 1 and "\n" not in message, message
    assert str(data) in message, message
    return message


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (BILLION_LAUGHS + "train: *i\nval: images/val\nnames: [a]", "YAML alias *a at line 2: aliases are not allowed"),
        ("base: &b images/train\ntrain: *b\nval: images/val\nnames: [a]", "aliases are not allowed"),
        ("train: " + "[" * 5000 + "]" * 5000 + "\nval: images/val\nnames: [a]", "nested too deeply"),
        ("nc: " + "9" * 5000, "not valid YAML (Exceeds the limit"),
        (b"train: images/train\nval: images/val\nnames: [caf\xe9]", "not UTF-8 text (byte 0xe9 at offset"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a binary file, not a data.yaml"),
        (b"\xff\xfe\xfd garbage", "not UTF-8 text (byte 0xff at offset 0)"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("just a string", "found a string"),
        ("42", "found a number"),
        ("- a\n- b", "found a list"),
        (SPLITS + "names: [a, b, c]\nnc: three", "'nc' must be a positive whole number of classes, not 'three'"),
        (SPLITS + "nc: -1", "'nc' must be a positive whole number of classes, not -1"),
        (SPLITS + "nc: true", "'nc' must be a positive whole number of classes, not True"),
        (SPLITS + "nc: 0", "'nc' must be a positive whole number of classes, not 0"),
        (SPLITS + "nc: 2.5", "'nc' must be a positive whole number of classes, not 2.5"),
        (SPLITS + "names: [a]\nnc:", "'nc' must be a positive whole number of classes, not nothing"),
        (SPLITS + "nc: 1000000000", "more classes than autotune supports"),
        ("path: [1, 2]\n" + SPLITS + "names: [a]", "'path' must be a folder path (a string), not a list"),
        ("path: 12\n" + SPLITS + "names: [a]", "'path' must be a folder path (a string), not a number"),
        (SPLITS + "names: {0: a, 2: b}", "'names' keys must be the class indices 0 to 1, found [0, 2]"),
        (SPLITS + "names: {1: a, 2: b}", "'names' keys must be the class indices 0 to 1, found [1, 2]"),
        (SPLITS + "names: {a: x}", "'names' keys must be the class indices 0 to 0"),
        (SPLITS + "names: [a, [b, c]]", "'names' entry 1 must be a string or a number, not a list"),
        (SPLITS + "names: [a, {b: c}]", "'names' entry 1 must be a string or a number, not a mapping"),
        (SPLITS + "names: [a, null]", "'names' entry 1 must be a string or a number, not nothing"),
        (SPLITS + "names: [a, no]", "'names' entry 1 reads as true/false; quote it"),
        (SPLITS + "names: []", "'names' is empty"),
        (SPLITS + "names: {}", "'names' is empty"),
        (SPLITS + "names: abc", "'names' must be a list or a mapping of class index to name, not a string"),
        ("train: [images/train, 3]\nval: images/val\nnames: [a]", "'train' entry 1 must be a folder or list file path"),
        ("train: [images/train, null]\nval: images/val\nnames: [a]", "'train' entry 1 must be a folder or list file"),
        ("train: images/train\nval: [[images/val]]\nnames: [a]", "'val' entry 0 must be a folder or list file path"),
        ("train: {a: images/train}\nval: images/val\nnames: [a]", "'train' must be a folder, a list file or a list"),
        ("train: 12\nval: images/val\nnames: [a]", "'train' must be a folder, a list file or a list of those, not a"),
        ("train: []\nval: images/val\nnames: [a]", "'train:' is an empty list"),
        ("train:\nval: images/val\nnames: [a]", "'train:' has no value"),
    ],
)
def test_bad_data_yaml_is_one_clear_line(tmp_path, content, message):
    make_dataset(tmp_path, n_train=2, n_val=1)
    data = tmp_path / "bad.yaml"
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert message in refused(data)


def test_data_yaml_over_1_mib_is_refused_unread(tmp_path):
    data = tmp_path / "big.yaml"
    data.write_text("names: [a]\n" + "# padding\n" * 120_000)
    assert "larger than 1 MiB, too large for a data.yaml" in refused(data)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("path: " + "a" * 300 + "\n" + SPLITS, "File name too long"),
        ("train: " + "b" * 300 + "\nval: images/val\n", "File name too long"),
        ("train: " + "x/" * 3000 + "\nval: images/val\n", "File name too long"),
        ('path: "a\\0b"\n' + SPLITS, "embedded null byte"),
        ('train: "images/tr\\0ain"\nval: images/val\n', "embedded null byte"),
        ('path: "~no-such-user-here/x"\n' + SPLITS, "'path' ~no-such-user-here/x"),
    ],
)
def test_paths_the_os_refuses_are_one_clear_line(tmp_path, content, message):
    make_dataset(tmp_path, n_train=2, n_val=1)
    data = tmp_path / "long.yaml"
    data.write_text(content + "names: [a, b, c]\n")
    got = refused(data)
    assert message in got and len(got) < 400  # a 6000-character path is shortened in the message


def test_list_file_that_is_not_text_or_not_a_file(tmp_path):
    make_dataset(tmp_path, n_train=2, n_val=1)
    (tmp_path / "train.txt").write_bytes(b"\xff\xfe./images/train/im0.jpg\n")
    data = tmp_path / "d.yaml"
    data.write_text("train: train.txt\nval: images/val\nnames: [a, b, c]\n")
    assert f"'train': list file {tmp_path / 'train.txt'} is not UTF-8 text" in refused(data)
    (tmp_path / "train.txt").unlink()
    os.mkfifo(tmp_path / "train.txt")  # reading a FIFO would block forever
    assert "is neither a folder nor a list file" in refused(data)


def write_label(root: Path, split: str, i: int, text: str) -> Path:
    label = root / "labels" / split / f"im{i}.txt"
    label.write_text(text)
    return label


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2", "line 2: class 3 is out of range: 3 classes means 0 to 2"),
        ("\n\n-1 0.5 0.5 0.2 0.2", "line 3: class -1 is negative"),
        ("1.5 0.5 0.5 0.2 0.2", "line 1: class 1.5 is not a whole number"),
        ("0 0.5 0.5 0.2", "line 1: expected 5 values (class x y width height), found 4"),
        ("0 0.5 0.5 0.2 0.2 0.1", "line 1: expected 5 values (class x y width height), found 6"),
        ("0 0.5 zero 0.2 0.2", "line 1: 'zero' is not a number"),
        ("0 0.5 nan 0.2 0.2", "line 1: 'nan' is not a finite number"),
        ("0 0.5 0.5 0.2 1e39", "line 1: '1e39' is too large"),
        ("0 1.2 0.5 0.2 0.2", "line 1: x 1.2 is above 1"),
        ("0 0.5 0.5 0.2 1.0101", "line 1: height 1.0101 is above 1"),
        ("0 0.5 -0.02 0.2 0.2", "line 1: y -0.02 is negative"),
        ("0 0.5 0.5 -0.001 0.2", "line 1: width -0.001 is negative"),
        ("0 0.1 0.1 0.2 0.1 0.2 0.2\n1 0.5 0.5 0.2 0.2", "line 2: a box line among polygon lines"),
        ("0 0.1 0.1 0.2 0.1 0.2", "line 1: expected 5 values (class x y width height), found 6"),
        ("0 0.1 0.1 0.2 0.1 0.2 0.2\n1 0.5 0.5 0.2", "line 2: a polygon line needs a class and x y pairs, found 4"),
        ("0 0.1 0.1 0.2 0.1 0.2 0.2 0.3", "line 1: a polygon line needs a class and x y pairs, found 8 values"),
        ("0 0.1 0.1 2.5 0.1 2.5 0.2", "line 1: box center x 1.3 is above 1"),
        ("4 0.1 0.1 0.2 0.1 0.2 0.2", "line 1: class 4 is out of range"),
    ],
)
def test_bad_label_lines_are_refused_with_file_and_line(tmp_path, text, message):
    data = make_dataset(tmp_path, n_train=4, n_val=2)
    label = write_label(tmp_path, "train", 2, text)
    got = refused(data, check_labels=True)
    assert f"bad label file {label}: {message}" in got
    assert "(1 of 6 label files are bad; Ultralytics would drop their images as corrupt)" in got
    assert load_dataset(data).train  # without check_labels nothing reads the labels


def test_bad_label_count_and_unreadable_files(tmp_path):
    data = make_dataset(tmp_path, n_train=4, n_val=2)
    write_label(tmp_path, "val", 1, "9 0.5 0.5 0.2 0.2")
    first = tmp_path / "labels" / "train" / "im3.txt"  # train comes first: the first bad file named
    first.write_bytes(b"\xff 0.5 0.5 0.2 0.2")
    got = refused(data, check_labels=True)
    assert f"bad label file {first}: not UTF-8 text (2 of 6 label files are bad" in got


def test_labels_ultralytics_accepts_pass(tmp_path):
    data = make_dataset(tmp_path, n_train=8, n_val=2)
    write_label(tmp_path, "train", 0, "")  # empty: a background image
    write_label(tmp_path, "train", 1, "\ufeff0 0.5 0.5 0.2 0.2\r\n\r\n2 1.0 1.0 0.01 0.01\n")
    write_label(tmp_path, "train", 2, "0 1.01 -0.01 0.2 0.2\n1.0 0.5 0.5 0 0")  # within Ultralytics' 1% tolerance
    write_label(tmp_path, "train", 3, "0 0.1 0.1 0.2 0.1 0.2 0.2\n1 0.3 0.3 0.4 0.3 0.4 0.4 0.3 0.4")  # polygons
    write_label(tmp_path, "train", 4, "0 0.5 0.1 1.5 0.1 1.5 0.2")  # a polygon past 1 whose box center and size fit
    write_label(tmp_path, "train", 5, "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2")  # duplicates: Ultralytics drops one
    (tmp_path / "labels" / "train" / "im6.txt").unlink()  # no label file: a background image
    info = load_dataset(data, check_labels=True)
    assert len(info.train) == 8 and info.names == ("a", "b", "c")


def test_label_check_agrees_with_ultralytics(tmp_path):
    """The check refuses exactly what Ultralytics' verify_image_label calls corrupt (hand-picked and random lines)."""
    import random

    import cv2
    import numpy as np

    verify_image_label = pytest.importorskip("ultralytics.data.utils").verify_image_label
    from autotune.measure.labels import label_file_problem

    image, label = tmp_path / "im.jpg", tmp_path / "im.txt"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    texts = [
        "0 1.01000000001 .5 .2 .2",
        "0 -0.0101 .5 .2 .2",
        "-0.0 .5 .5 .2 .2",
        "2.0000001 .5 .5 .2 .2",
        "0 1e39 .5 .2 .2",
    ]
    texts += [
        "0 .1 .1 .2 .1 .2 .2\n1 .5 .5",
        "0 .1 .1 .2 .1 .2 .2\n1",
        "0 -.02 .1 .0 .1 .0 .2",
        "0 1.02 .5 1.0 .5 1.0 .6",
    ]
    rng = random.Random(0)
    tokens = ["0", "1", "2", "3", "-1", "0.5", "1.005", "1.02", "-0.005", "-0.02", "x", "nan", "2.5", "0.999"]
    for _ in range(400):
        rows = [" ".join(rng.choices(tokens, k=rng.choice([1, 3, 4, 5, 5, 5, 6, 7, 8, 9]))) for _ in range(3)]
        texts.append("\n".join(rows[: rng.randint(1, 3)]))
    for text in texts:
        label.write_text(text)
        with np.errstate(all="ignore"):
            corrupt = verify_image_label((str(image), str(label), "", False, 3, 0, 0, False))[8] == 1
        assert corrupt == (label_file_problem(str(label), 3) is not None), text


@pytest.mark.timeout(20)
def test_symlink_loop_is_refused_fast(tmp_path):
    data = make_dataset(tmp_path, n_train=2, n_val=1)
    train = tmp_path / "images" / "train"
    os.symlink("..", train / "loop1")
    os.symlink("..", train / "loop2")
    got = refused(data)
    assert f"'train': symbolic link {train / 'loop1'} loops back to {train}, so the folder tree never ends" in got
    (train / "loop1").unlink()
    (train / "loop2").unlink()
    os.symlink(".", train / "self")
    assert f"symbolic link {train / 'self'} loops back to {train}" in refused(data)


def test_folder_walk_lists_what_glob_lists(tmp_path):
    """Links that are not loops are followed as glob follows them: the same paths, duplicates included."""
    import glob

    from autotune.measure.dataset import images_in

    root, outside = tmp_path / "images" / "train", tmp_path / "outside"
    for rel in ["a.jpg", "sub/b.png", "sub/v1.0/c.JPG", ".hidden/d.jpg", ".e.jpg", "noext", "sub/f.x.y"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "g.jpg").write_text("x")
    os.symlink(outside, root / "linked")
    os.symlink(root / "sub", root / "sub-again")  # the same folder twice: glob lists it twice
    os.symlink(root / "a.jpg", root / "alias.jpg")
    os.symlink(tmp_path / "nowhere", root / "broken.jpg")
    expected = glob.glob(str(Path(glob.escape(str(root))) / "**" / "*.*"), recursive=True)
    assert sorted(images_in(root)) == sorted(expected)
    (tmp_path / "images" / "val").mkdir()
    (tmp_path / "images" / "val" / "v.jpg").write_text("x")
    (tmp_path / "d.yaml").write_text("train: images/train\nval: images/val\nnames: [a]\n")
    train = load_dataset(tmp_path / "d.yaml").train
    assert [str(Path(p).relative_to(root)) for p in train] == [
        "a.jpg",
        "alias.jpg",
        "broken.jpg",
        "linked/deep/g.jpg",
        "sub-again/b.png",
        "sub-again/v1.0/c.JPG",
        "sub/b.png",
        "sub/v1.0/c.JPG",
    ]
