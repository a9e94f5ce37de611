"""Read a user's data.yaml the way Ultralytics does, without touching anything, and refuse what it would trip on.

Every problem is a UserError of one line naming the file: YAML that is not a data.yaml (aliases, a bomb, binary),
classes and names, paths the OS refuses, folder trees that loop, and (labels.py) label files Ultralytics would
drop as corrupt. Probes then stage a subset as links (staging.py), never reading the user's folders through
Ultralytics.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from autotune.errors import UserError
from autotune.measure.labels import check_label_files, label_path, one_line_error, shorten

IMG_FORMATS = frozenset({"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"})
MAX_YAML_BYTES = 1 << 20  # a data.yaml is a few KiB; anything far larger is the wrong file (or an attack)
MAX_CLASSES = 100_000  # 'nc' alone makes this many names: a typo such as 'nc: 1e9' must not eat the RAM


def _kind(value: object) -> str:
    """How a YAML value reads to its author: 'a list', 'a mapping', 'true/false' (not Python type names)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    kinds = {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


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


def entry_path(item: str, root: Path) -> Path:
    """Where one train/val entry points, as Ultralytics resolves it: under root, retried without a leading '../'."""
    p = (root / str(item)).resolve()
    if not p.exists() and str(item).startswith("../"):
        p = (root / str(item)[3:]).resolve()
    return p


def _dir_id(path: str | os.DirEntry[str]) -> tuple[int, int]:
    """(device, inode) of a folder, following links: two paths to one folder share it."""
    st = path.stat() if isinstance(path, os.DirEntry) else os.stat(path)
    return st.st_dev, st.st_ino


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows links, as glob's '**' does
    except OSError:
        return False  # glob skips what it cannot stat (a link to itself, a vanished file)


_Trail = list[tuple[str, tuple[int, int], bool]]  # folders from the walk's root down: (path, folder id, is a link)


def _loop_error(trail: _Trail, path: str, is_link: bool, ident: tuple[int, int]) -> UserError:
    """The error for a folder that is its own ancestor: name the deepest link on the way (the likely culprit)."""
    k = next(i for i, (_, fid, _) in enumerate(trail) if fid == ident)
    links = [p for p, _, link in trail[k + 1 :] if link] + ([path] if is_link else [])
    ancestor = trail[k][0]
    if links:
        return UserError(f"symbolic link {links[-1]} loops back to {ancestor}, so the folder tree never ends")
    return UserError(f"folder {path} is the folder {ancestor} again (a loop), so the folder tree never ends")


def walk_files(root: str) -> list[str]:
    """What glob(root/**/*.*, recursive=True) returns (non-hidden names with a dot, files or folders, through
    links; in walk order, not glob's), without its endless walk when links make a loop: a UserError naming the link.

    Only a folder on the current path counts as a loop: a folder reached twice by different links is listed twice,
    as glob lists it.
    """
    out: list[str] = []
    stack: list[_Trail] = [[(root, _dir_id(root), False)]]  # each item ends with the folder to list
    while stack:
        trail = stack.pop()
        folder = trail[-1][0]
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue  # glob silently skips a folder it cannot list
        below = []
        for e in entries:
            if e.name.startswith("."):
                continue  # glob's '*' and '**' skip hidden names
            path = os.path.join(folder, e.name)
            if "." in e.name:
                out.append(path)
            if not _is_dir(e):
                continue
            try:
                ident = _dir_id(e)
            except OSError:
                continue
            if any(fid == ident for _, fid, _ in trail):
                raise _loop_error(trail, path, e.is_symlink(), ident)
            below.append([*trail, (path, ident, e.is_symlink())])
        stack.extend(reversed(below))
    return out


def images_in(p: Path) -> list[str]:
    """Image paths (unfiltered) an entry gives: every file under a folder, or the lines of a list file."""
    if p.is_dir():
        return walk_files(str(p))
    if not p.is_file():  # a FIFO or device would block or never end; Ultralytics reads only files
        raise UserError(f"{p} is neither a folder nor a list file")
    parent = str(p.parent) + os.sep
    try:
        lines = p.read_text(encoding="utf-8-sig").strip().splitlines()
    except UnicodeDecodeError:
        raise UserError(f"list file {p} is not UTF-8 text") from None
    return [x.replace("./", parent, 1) if x.startswith("./") else x for x in (s.strip() for s in lines) if x]


def split_entries(entry: Any, key: str, yaml_path: Path) -> list[str]:
    """The paths of one split entry (a folder or list file, or a list of those), each checked to be a string."""
    if not isinstance(entry, (str, list)):
        raise one_line_error(
            f"{yaml_path}: '{key}' must be a folder, a list file or a list of those, not {_kind(entry)}"
        )
    items = entry if isinstance(entry, list) else [entry]
    if not items:
        raise one_line_error(f"{yaml_path}: '{key}:' is an empty list; give a folder or a list file")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise one_line_error(
                f"{yaml_path}: '{key}' entry {i} must be a folder or list file path, not {_kind(item)}"
            )
    return items


def _os_error(yaml_path: Path, e: OSError | ValueError) -> UserError:
    """The OS refusing a path the user wrote (too long, a NUL byte, no permission) is bad input, not a crash."""
    if isinstance(e, OSError):
        what = shorten(e.filename) if e.filename else "a path"
        return one_line_error(f"{yaml_path}: cannot use the path {what}: {e.strerror or e}")
    return one_line_error(f"{yaml_path}: a path in it cannot be used ({e})")


def list_images(entry: str | list[str], root: Path, key: str, yaml_path: Path) -> list[str]:
    """Absolute, sorted image paths of one split entry (a folder, a list file, or a list of those)."""
    out: list[str] = []
    for item in split_entries(entry, key, yaml_path):
        try:
            p = entry_path(item, root)
            found = images_in(p) if p.exists() else None
        except UserError as e:  # a link loop or an unusable list file, found by images_in
            raise one_line_error(f"{yaml_path}: '{key}': {e}") from None
        except (OSError, ValueError) as e:  # the OS refusing the path; ValueError: a NUL byte in it
            raise _os_error(yaml_path, e) from e
        if found is None:
            raise one_line_error(f"{yaml_path}: '{key}' path {shorten(p)} does not exist")
        if p.is_file():  # a list file: Ultralytics would drop the images it names that are not there, silently
            _check_listed(found, p, key, yaml_path)
        out += found
    images = sorted(x for x in out if x.rpartition(".")[-1].lower() in IMG_FORMATS)
    if not images:
        raise one_line_error(f"{yaml_path}: no images found under '{key}' ({shorten(entry)})")
    return [str(Path(x).absolute()) for x in images]


def _check_listed(listed: list[str], list_file: Path, key: str, yaml_path: Path) -> None:
    images = [x for x in listed if x.rpartition(".")[-1].lower() in IMG_FORMATS]
    missing = [x for x in images if not os.path.isfile(x)]
    if missing:
        raise one_line_error(
            f"{yaml_path}: '{key}' list file {shorten(list_file)} names {len(missing)} image(s) that do not exist, "
            f"e.g. {shorten(missing[0])}"
        )


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases: a data.yaml never needs them, and nested aliases expand to billions of
    items ("billion laughs") that hang or flood whatever walks the result."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasFound(event.anchor, event.start_mark.line + 1)
        return super().compose_node(parent, index)


class _AliasFound(Exception):
    """Raised by _NoAliasLoader: which alias, on which line."""

    def __init__(self, anchor: str, line: int) -> None:
        super().__init__(anchor, line)
        self.anchor, self.line = anchor, line


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line saying what the YAML parser disliked and where."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f", line {mark.line + 1}" if mark else ""
        return f"{e.problem or e.context}{where}"
    return (str(e).splitlines() or [type(e).__name__])[0]


def read_data_yaml(path: Path, shown: str | Path) -> dict[str, Any]:
    """The data.yaml's mapping, read with limits: size, encoding, no aliases, bounded nesting."""
    try:
        if not path.is_file():
            raise one_line_error(f"data file {shown} not found")
        with open(path, "rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except (OSError, ValueError) as e:
        raise one_line_error(f"data file {shown}: cannot be read ({getattr(e, 'strerror', None) or e})") from e
    if len(raw) > MAX_YAML_BYTES:
        raise one_line_error(f"{path}: larger than {MAX_YAML_BYTES >> 20} MiB, too large for a data.yaml")
    if b"\0" in raw:
        raise one_line_error(f"{path}: a binary file, not a data.yaml (YAML text)")
    try:
        text = raw.decode("utf-8")
        data = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass: no arbitrary objects
    except UnicodeDecodeError as e:
        raise one_line_error(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    except _AliasFound as e:
        raise one_line_error(
            f"{path}: YAML alias *{shorten(e.anchor, 40)} at line {e.line}: aliases are not allowed in a data.yaml "
            "(write the value out)"
        ) from None
    except RecursionError:
        raise one_line_error(f"{path}: nested too deeply to be a data.yaml") from None
    except yaml.YAMLError as e:
        raise one_line_error(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise one_line_error(f"{path}: not valid YAML ({shorten(str(e).split(';')[0])})") from None
    if data is None:
        raise one_line_error(f"{path}: the file is empty; expected a mapping with 'train', 'val' and 'names'")
    if not isinstance(data, dict):
        raise one_line_error(f"{path}: expected a mapping with 'train', 'val' and 'names', found {_kind(data)}")
    return data


def _nc(data: dict[str, Any], path: Path) -> int | None:
    """'nc' as Ultralytics reads it (whole numbers, also '3' or 3.0), None when absent; anything else refused."""
    if "nc" not in data:
        return None
    raw, nc = data["nc"], None
    if isinstance(raw, (int, float, str)) and not isinstance(raw, bool):
        try:
            value = float(raw)
            nc = int(value) if value.is_integer() else None
        except (ValueError, OverflowError):
            nc = None
    if nc is None or nc < 1:
        shown = "nothing" if raw is None else shorten(repr(raw), 60)
        raise one_line_error(f"{path}: 'nc' must be a positive whole number of classes, not {shown}")
    if nc > MAX_CLASSES:
        raise one_line_error(f"{path}: 'nc: {nc}' is more classes than autotune supports (at most {MAX_CLASSES})")
    return nc


def _class_index(key: Any) -> int | None:
    """A 'names' mapping key as a class index (0 or '0'), None when it is not one."""
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        return None
    try:
        return int(key)
    except ValueError:
        return None


def _names_list(names: Any, path: Path) -> list[Any]:
    """'names' (a list, or a mapping with keys exactly 0..n-1) as a list in class order."""
    if isinstance(names, dict):
        index = {_class_index(k): v for k, v in names.items()}
        if len(index) != len(names) or set(index) != set(range(len(names))):
            raise one_line_error(
                f"{path}: 'names' keys must be the class indices 0 to {len(names) - 1}, found {shorten(list(names))}"
            )
        names = [index[i] for i in range(len(names))]
    if not isinstance(names, list):
        raise one_line_error(f"{path}: 'names' must be a list or a mapping of class index to name, not {_kind(names)}")
    if not names:
        raise one_line_error(f"{path}: 'names' is empty; give at least one class name")
    for i, name in enumerate(names):
        if isinstance(name, bool):  # YAML reads yes/no/on/off as true/false: Ultralytics would name it 'True'
            raise one_line_error(f"{path}: 'names' entry {i} reads as true/false; quote it, e.g. \"yes\"")
        if not isinstance(name, (str, int, float)):
            raise one_line_error(f"{path}: 'names' entry {i} must be a string or a number, not {_kind(name)}")
    return names


def class_names(data: dict[str, Any], path: Path) -> tuple[str, ...]:
    """The class names from 'names' or 'nc' (as Ultralytics: 'names' wins, and both must agree)."""
    nc = _nc(data, path)
    if data.get("names") is None:
        if nc is None:
            raise one_line_error(f"{path}: give 'names' (or an integer 'nc')")
        return tuple(f"class_{i}" for i in range(nc))
    names = _names_list(data["names"], path)
    if nc is not None and nc != len(names):
        raise one_line_error(f"{path}: 'names' has {len(names)} entries but 'nc' is {nc}")
    return tuple(str(n) for n in names)


def load_dataset(data_yaml: str | Path, *, check_labels: bool = False) -> DatasetInfo:
    """Parse a data.yaml the way Ultralytics does; any problem is a UserError naming the file.

    check_labels: also read every label file and refuse those Ultralytics would drop as corrupt (about 1 s per 25k
    files): the CLI asks for it once, up front; the many later calls (probes, plans) skip it.
    """
    try:
        path = Path(data_yaml).expanduser()
    except RuntimeError as e:  # '~nosuchuser/...'
        raise one_line_error(f"data file {data_yaml}: {e}") from None
    data = read_data_yaml(path, data_yaml)
    for key in ("train", "val"):
        if key not in data:
            raise one_line_error(f"{path}: '{key}:' key missing; 'train' and 'val' are required")
        if data[key] is None or data[key] == "":
            raise one_line_error(f"{path}: '{key}:' has no value; give a folder, a list file or a list of those")
    names = class_names(data, path)
    root = data_root(data, path)
    info = DatasetInfo(
        yaml_path=str(path.resolve()),
        names=names,
        train=tuple(list_images(data["train"], root, "train", path)),
        val=tuple(list_images(data["val"], root, "val", path)),
    )
    if check_labels:
        check_label_files([*info.train, *info.val], len(names), path)
    return info


def data_root(data: dict[str, Any], yaml_path: Path) -> Path:
    """The folder split entries are relative to: 'path' (relative to where the user runs, as in Ultralytics, else
    beside the YAML), or the YAML's own folder."""
    given = data.get("path")
    if given is not None and not isinstance(given, str):
        raise one_line_error(f"{yaml_path}: 'path' must be a folder path (a string), not {_kind(given)}")
    try:
        root = Path(given or yaml_path.parent).expanduser()
        if not root.is_absolute():
            root = root.resolve() if root.exists() else (yaml_path.parent / root).resolve()
    except RuntimeError as e:  # '~nosuchuser'
        raise one_line_error(f"{yaml_path}: 'path' {shorten(given)}: {e}") from None
    except (OSError, ValueError) as e:
        raise _os_error(yaml_path, e) from e
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


def stale_npy(images: list[str] | tuple[str, ...]) -> list[str]:
    """.npy files beside the user's images: Ultralytics loads them in every cache mode when newer than the image."""
    return [str(Path(im).with_suffix(".npy")) for im in images if Path(im).with_suffix(".npy").exists()]
