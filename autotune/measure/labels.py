"""YOLO label files checked as Ultralytics' verify_image_label checks them: class ids in range, five numbers per
box (or a class and x y pairs per polygon), coordinates within its tolerance. A file it would drop as corrupt is
refused up front, so training does not silently differ from what the user thinks."""

from __future__ import annotations

import math
import os
import re
from array import array
from collections.abc import Iterable
from itertools import chain
from pathlib import Path

from autotune.errors import UserError

_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# Ultralytics' verify_image_label tolerance: coordinates up to 1.01, values down to -0.01 (width/height >= 0)
COORD_MAX, COORD_MIN = 1.01, -0.01


def one_line_error(message: str) -> UserError:
    """A UserError whose text is one line whatever odd names it quotes (the CLI prints it as one line)."""
    return UserError(_LINE_BREAKS.sub(lambda m: repr(m.group())[1:-1], message))


def shorten(text: object, limit: int = 160) -> str:
    """A user-supplied value cut to a readable length for a message."""
    s = str(text)
    return s if len(s) <= limit else f"{s[: limit - 43]}...{s[-40:]}"


def label_path(image: str) -> str:
    """Ultralytics' rule: the last '/images/' becomes '/labels/' and the extension becomes '.txt'."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def _numbers(row: list[str]) -> list[float] | str:
    """The row's values rounded to float32 as numpy reads them (Ultralytics' limits apply to those), or the
    problem."""
    try:
        values = array("f", map(float, row)).tolist()
    except ValueError:
        bad = next(t for t in row if not _is_float(t))
        return f"{shorten(bad, 40)!r} is not a number"
    for token, v in zip(row, values, strict=True):
        if not math.isfinite(v):  # NaN, infinity, or beyond float32 (numpy reads it as infinity)
            too_large = math.isfinite(float(token))
            return f"{shorten(token, 40)!r} is {'too large' if too_large else 'not a finite number'}"
    return values


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _class_problem(token: str, value: float, nc: int) -> str | None:
    if not value.is_integer():
        return f"class {token} is not a whole number"
    if value < 0:
        return f"class {token} is negative"
    if value >= nc:
        return f"class {token} is out of range: {nc} classes means 0 to {nc - 1}"
    return None


def _box_problem(names: tuple[str, ...], values: list[float], shown: list[str]) -> str | None:
    """Ultralytics' bounds on x, y, width, height: at most 1.01, at least -0.01, width and height not negative."""
    for name, v, token in zip(names, values, shown, strict=True):
        if v > COORD_MAX:
            return f"{name} {token} is above 1"
        if v < COORD_MIN or (v < 0 and name in ("width", "height")):
            return f"{name} {token} is negative"
    return None


def _f32(value: float) -> float:
    return array("f", [value])[0]


def _polygon_box(values: list[float]) -> list[float]:
    """The box Ultralytics makes of a polygon (segments2boxes, xyxy2xywh) with its float32 arithmetic."""
    xs, ys = values[0::2], values[1::2]
    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
    return [_f32(x1 + x2) / 2, _f32(y1 + y2) / 2, _f32(x2 - x1), _f32(y2 - y1)]


def label_line_problem(row: list[str], polygons: bool, nc: int) -> str | None:
    """What Ultralytics' verify_image_label refuses in one split label line, None when it takes it.

    `polygons`: the file has a line of more than 6 values, so Ultralytics reads every line as class + x y pairs.
    """
    if not polygons and len(row) != 5:
        return f"expected 5 values (class x y width height), found {len(row)}"
    if polygons and len(row) == 5:
        return "a box line among polygon lines (Ultralytics refuses the mix)"
    if polygons and (len(row) < 3 or len(row) % 2 == 0):
        return f"a polygon line needs a class and x y pairs, found {len(row)} values"
    values = _numbers(row)
    if isinstance(values, str):
        return values
    problem = _class_problem(row[0], values[0], nc)
    if problem or not polygons:
        return problem or _box_problem(("x", "y", "width", "height"), values[1:], row[1:])
    box = _polygon_box(values[1:])
    names = ("box center x", "box center y", "box width", "box height")
    return _box_problem(names, box, [f"{v:.6g}" for v in box])


def label_file_problem(lbl: str, nc: int) -> str | None:
    """The first problem in one label file (a regular file) that makes Ultralytics drop its image as corrupt; None
    when fine."""
    try:
        with open(lbl, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    lines = [line.split() for line in text.splitlines()]
    if _boxes_fine([row for row in lines if row], nc):
        return None
    rows = [(i, row) for i, row in enumerate(lines, 1) if row]
    polygons = any(len(row) > 6 for _, row in rows)
    for i, row in rows:
        problem = label_line_problem(row, polygons, nc)
        if problem:
            return f"line {i}: {problem}"
    return None


def _boxes_fine(rows: list[list[str]], nc: int) -> bool:
    """The common file (box lines only, all within bounds) checked in one float32 pass; False sends it to the
    line-by-line check, which says what is wrong (or accepts polygons)."""
    if any(len(row) != 5 for row in rows):
        return False
    try:
        v = array("f", map(float, chain.from_iterable(rows)))
    except ValueError:
        return False
    if not v:
        return True
    if not math.isfinite(sum(v)):  # a NaN or infinity anywhere (finite float32 values cannot overflow the sum)
        return False
    cls, xy, wh = v[0::5], v[1::5] + v[2::5], v[3::5] + v[4::5]
    classes_ok = min(cls) >= 0 and max(cls) < nc and all(map(float.is_integer, cls))
    return classes_ok and min(xy) >= COORD_MIN and min(wh) >= 0 and max(max(xy), max(wh)) <= COORD_MAX


def check_label_files(images: Iterable[str], nc: int, yaml_path: Path) -> None:
    """Refuse label files Ultralytics would silently drop as corrupt (training would differ from what the user
    thinks): one line naming the first bad file and what is wrong, and how many are bad."""
    first, bad, total = None, 0, 0
    for lbl in dict.fromkeys(map(label_path, images)):  # an image in both splits is checked once
        if not os.path.isfile(lbl):  # no label file: a background image; Ultralytics reads regular files only
            continue
        total += 1
        problem = label_file_problem(lbl, nc)
        if problem:
            bad += 1
            first = first or f"{lbl}: {problem}"
    if first:
        raise one_line_error(
            f"{yaml_path}: bad label file {first} ({bad} of {total} label files are bad; Ultralytics would drop "
            "their images as corrupt)"
        )
