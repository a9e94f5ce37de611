"""Read a user's data.yaml without touching it, and stage probe subsets as links in a scratch folder.

A probe never reads the user's folders through Ultralytics: Ultralytics writes `labels.cache` beside the label
folder and `.npy` files beside the images (cache=disk), and reads any `.npy` beside an image in every cache mode.
Staging links into a private folder keeps the user's dataset byte-for-byte unchanged and keeps probes from
seeing each other's files.
"""

from __future__ import annotations

import glob
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from autotune.errors import UserError

IMG_FORMATS = frozenset({"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"})


@dataclass(frozen=True)
class DatasetInfo:
    """A detection dataset as Ultralytics would read it: image lists for train and val, class names."""

    yaml_path: str
    names: tuple[str, ...]
    train: tuple[str, ...]  # absolute image paths, sorted as Ultralytics sorts them
    val: tuple[str, ...]

    @property
    def nc(self) -> int:
        return len(self.names)


def label_path(image: str) -> str:
    """Ultralytics' rule: the last '/images/' becomes '/labels/' and the extension becomes '.txt'."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def entry_path(item: str, root: Path) -> Path:
    """Where one train/val entry points, as Ultralytics resolves it: under root, retried without a leading '../'."""
    p = (root / str(item)).resolve()
    if not p.exists() and str(item).startswith("../"):
        p = (root / str(item)[3:]).resolve()
    return p


def images_in(p: Path) -> list[str]:
    """Image paths (unfiltered) an entry gives: every file under a folder, or the lines of a list file."""
    if p.is_dir():
        return glob.glob(str(Path(glob.escape(str(p))) / "**" / "*.*"), recursive=True)
    parent = str(p.parent) + os.sep
    lines = p.read_text(encoding="utf-8-sig").strip().splitlines()
    return [x.replace("./", parent, 1) if x.startswith("./") else x for x in (s.strip() for s in lines) if x]


def list_images(entry: str | list[str], root: Path, key: str, yaml_path: Path) -> list[str]:
    """Absolute, sorted image paths of one split entry (a folder, a list file, or a list of those)."""
    out: list[str] = []
    for item in entry if isinstance(entry, list) else [entry]:
        p = entry_path(str(item), root)
        if not p.exists():
            raise UserError(f"{yaml_path}: '{key}' path {p} does not exist")
        out += images_in(p)
    images = sorted(x for x in out if x.rpartition(".")[-1].lower() in IMG_FORMATS)
    if not images:
        raise UserError(f"{yaml_path}: no images found under '{key}' ({entry})")
    return [str(Path(x).absolute()) for x in images]


def load_dataset(data_yaml: str | Path) -> DatasetInfo:
    """Parse a data.yaml the way Ultralytics does; any problem is a UserError naming the file."""
    path = Path(data_yaml).expanduser()
    if not path.is_file():
        raise UserError(f"data file {data_yaml} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with 'train', 'val' and 'names'")
    for key in ("train", "val"):
        if not data.get(key):
            raise UserError(f"{path}: '{key}:' key missing; 'train' and 'val' are required")
    names: Any = data.get("names")
    if names is None:
        nc = data.get("nc")
        if not isinstance(nc, int) or nc < 1:
            raise UserError(f"{path}: give 'names' (or an integer 'nc')")
        names = [f"class_{i}" for i in range(nc)]
    if isinstance(names, dict):
        try:
            names = [names[i] for i in sorted(int(k) for k in names)]
        except (KeyError, ValueError) as e:
            raise UserError(f"{path}: 'names' keys must be 0..n-1") from e
    if not isinstance(names, list) or not names:
        raise UserError(f"{path}: 'names' must be a list or a mapping of class index to name")
    if "nc" in data and data["nc"] is not None and int(data["nc"]) != len(names):
        raise UserError(f"{path}: 'names' has {len(names)} entries but 'nc' is {data['nc']}")
    root = data_root(data, path)
    return DatasetInfo(
        yaml_path=str(path.resolve()),
        names=tuple(str(n) for n in names),
        train=tuple(list_images(data["train"], root, "train", path)),
        val=tuple(list_images(data["val"], root, "val", path)),
    )


def data_root(data: dict[str, Any], yaml_path: Path) -> Path:
    """The folder split entries are relative to: 'path' (relative to where the user runs, as in Ultralytics, else
    beside the YAML), or the YAML's own folder."""
    root = Path(data.get("path") or yaml_path.parent).expanduser()
    if not root.is_absolute():
        root = root.resolve() if root.exists() else (yaml_path.parent / root).resolve()
    return root


def count_objects(images: list[str] | tuple[str, ...]) -> list[int]:
    """Label lines per image (0 where there is no label file)."""
    counts = []
    for im in images:
        try:
            with open(label_path(im), encoding="utf-8-sig") as f:
                counts.append(sum(1 for line in f if line.strip()))
        except OSError:
            counts.append(0)
    return counts


def choose_subset(counts: list[int], n: int, seed: int, top_share: float = 0.1) -> list[int]:
    """Indices of n images: the ones with the most objects first (GPU memory grows with objects per image in the
    label assigner), the rest a seeded random draw so the subset looks like the dataset."""
    total = len(counts)
    if n >= total:
        return list(range(total))
    top_n = max(1, int(n * top_share))
    by_objects = sorted(range(total), key=lambda i: (-counts[i], i))
    chosen = set(by_objects[:top_n])
    rest = [i for i in range(total) if i not in chosen]
    chosen.update(random.Random(seed).sample(rest, n - top_n))
    return sorted(chosen)


def header_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the file header (no decoding); None when it cannot be read.

    Once Ultralytics is imported, PIL's Image.open is its patch, which meets an unknown format by trying to
    install and import pi-heif: that ImportError means "unreadable" here too (YOLO_OFFLINE stops the install).
    """
    from PIL import Image

    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ImportError, Image.DecompressionBombError):
        return None


def image_sizes(paths: list[str] | tuple[str, ...]) -> list[tuple[int, int]]:
    """(width, height) of each readable image, from its header alone (no decoding)."""
    return [s for s in map(header_size, paths) if s is not None]


def stale_npy(images: list[str] | tuple[str, ...]) -> list[str]:
    """.npy files beside the user's images: Ultralytics loads them in every cache mode when newer than the image."""
    return [str(Path(im).with_suffix(".npy")) for im in images if Path(im).with_suffix(".npy").exists()]


@dataclass(frozen=True)
class StagedSubset:
    root: str
    data_yaml: str
    train: tuple[str, ...]  # staged paths (links), same order as sources
    val: tuple[str, ...]
    train_sources: tuple[str, ...]
    val_sources: tuple[str, ...]
    train_objects: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _link_split(split: str, sources: list[str], root: Path) -> list[str]:
    img_dir, lbl_dir = root / split / "images", root / split / "labels"
    img_dir.mkdir(parents=True)
    lbl_dir.mkdir(parents=True)
    staged = []
    for k, src in enumerate(sources):
        # a numbered name keeps images from different source folders apart and keeps the original extension
        name = f"{k:07d}_{Path(src).name}"
        dst = img_dir / name
        os.symlink(src, dst)
        lbl = label_path(src)
        if os.path.exists(lbl):
            os.symlink(lbl, lbl_dir / (dst.stem + ".txt"))
        staged.append(str(dst))
    return staged


def stage(info: DatasetInfo, train_idx: list[int], val_idx: list[int], root: Path, counts: list[int]) -> StagedSubset:
    """Link the chosen images and their labels into root/{train,val}/{images,labels} and write a data.yaml."""
    train_src = [info.train[i] for i in train_idx]
    val_src = [info.val[i] for i in val_idx]
    train = _link_split("train", train_src, root)
    val = _link_split("val", val_src, root)
    data_yaml = root / "data.yaml"
    data_yaml.write_text(
        yaml.safe_dump(
            {"path": str(root), "train": "train/images", "val": "val/images", "names": dict(enumerate(info.names))},
            sort_keys=False,
        )
    )
    return StagedSubset(
        root=str(root),
        data_yaml=str(data_yaml),
        train=tuple(train),
        val=tuple(val),
        train_sources=tuple(train_src),
        val_sources=tuple(val_src),
        train_objects=tuple(counts[i] for i in train_idx),
    )
